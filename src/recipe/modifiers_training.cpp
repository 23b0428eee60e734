// Distillation and training-schedule modifiers (SparseML vocabulary, and SparseML's newer
// OutputDistillationModifier, which llm-compressor dropped).
#include "detail/common_args.h"
#include "stunt/recipe/registry.h"

namespace stunt::recipe {

void register_distillation_modifiers(ModifierRegistry& r) {
  r.add({"OutputDistillationModifier", "distillation",
         "match the student's layer outputs to the teacher's",
         ArgSchema::object(detail::concat(
             {detail::llmcompressor_base_fields(),
              {required_field("targets", ArgSchema::one_of({ArgSchema::string(),
                                                            ArgSchema::list_of(ArgSchema::any())})),
               field("projection", ArgSchema::string().nullable()),
               field("projection_args", ArgSchema::map_of(ArgSchema::any()).nullable()),
               field("transforms", ArgSchema::string_or_list()),
               field("transforms_args", ArgSchema::map_of(ArgSchema::any()).nullable()),
               field("comparison",
                     ArgSchema::enumeration({"kl_divergence", "square_head", "l2_distance",
                                             "inner_product", "cosine_similarity", "cross_entropy",
                                             "mse", "normalized_mse", "cosine"})),
               field("comparison_args", ArgSchema::map_of(ArgSchema::any()).nullable()),
               field("orig_scale", ArgSchema::number().range(0, 1e9)),
               field("distill_scale", ArgSchema::number().range(0, 1e9)),
               inert_field("offload_layer_output", ArgSchema::boolean(),
                           "where llm-compressor keeps layer outputs between passes (GPU or CPU "
                           "memory); Stunt trains on the CPU")}}))});
  r.add({"AttentionDistillationModifier", "distillation",
         "match the student's self-attention to the teacher's: TinyBERT's map MSE or MiniLM's "
         "attention and value-relation KL (Stunt)",
         ArgSchema::object(detail::concat(
             {detail::sparseml_epoch_fields(),
              {field("loss", ArgSchema::enumeration({"minilm", "tinybert"})),
               field("gain", ArgSchema::number().range(0, 1e9)),
               field("targets", ArgSchema::one_of({ArgSchema::string(),
                                                   ArgSchema::list_of(ArgSchema::any())}))}}))});
  r.add({"PerLayerDistillationModifier", "distillation",
         "match the student's block outputs to the teacher's, with learned projections (SparseML)",
         ArgSchema::object(detail::concat(
             {detail::sparseml_epoch_fields(),
              {field("gain", ArgSchema::number().range(0, 1e9)),
               field("normalize", ArgSchema::boolean()),
               field("student_layer_names", ArgSchema::list_of(ArgSchema::string()).nullable()),
               field("teacher_layer_names", ArgSchema::list_of(ArgSchema::string()).nullable()),
               field("project_features", ArgSchema::boolean()),
               field("epsilon", ArgSchema::number().range(0, 1))}}))});
  r.add(
      {"DistillationModifier", "distillation",
       "logit distillation with temperature and hardness (SparseML)",
       ArgSchema::object(detail::concat(
           {detail::sparseml_epoch_fields(),
            {field("distill_output_keys", ArgSchema::list_of(ArgSchema::any()).nullable()),
             field("teacher_input_keys", ArgSchema::list_of(ArgSchema::any()).nullable()),
             field("hardness", ArgSchema::number().range(0, 1)),
             field("temperature", ArgSchema::number().range(0, 1e6, /*min_exclusive=*/true))}}))});
}

void register_training_modifiers(ModifierRegistry& r) {
  r.add({"EpochRangeModifier", "training", "sets the number of training epochs",
         ArgSchema::object({required_field("start_epoch", ArgSchema::number()),
                            required_field("end_epoch", ArgSchema::number())})});
  r.add({"SetLearningRateModifier", "training", "sets the learning rate at start_epoch",
         ArgSchema::object(
             {required_field("learning_rate", ArgSchema::number().nullable()),
              field("param_groups", ArgSchema::list_of(ArgSchema::integer()).nullable()),
              field("start_epoch", ArgSchema::number()), field("end_epoch", ArgSchema::number()),
              field("constant_logging", ArgSchema::boolean())})});
  r.add({"LearningRateFunctionModifier", "training",
         "learning-rate schedule (linear, cosine, cyclic_linear) between two epochs",
         ArgSchema::object(
             {required_field("lr_func",
                             ArgSchema::enumeration({"linear", "cosine", "cyclic_linear"})),
              required_field("init_lr", ArgSchema::number()),
              required_field("final_lr", ArgSchema::number()),
              required_field("start_epoch", ArgSchema::number()),
              required_field("end_epoch", ArgSchema::number()),
              field("cycle_epochs", ArgSchema::number()),
              field("param_groups", ArgSchema::list_of(ArgSchema::integer()).nullable()),
              field("update_frequency", ArgSchema::number())})});
  r.add({"SetWeightDecayModifier", "training", "sets the optimizer's weight decay",
         ArgSchema::object(
             {required_field("weight_decay", ArgSchema::number()),
              field("start_epoch", ArgSchema::number()),
              field("param_groups", ArgSchema::list_of(ArgSchema::integer()).nullable()),
              field("constant_logging", ArgSchema::boolean())})});
}

}  // namespace stunt::recipe
