// Recipes that alternate one-shot and train stages: each run of one-shot stages goes through
// run_oneshot, each train stage through the Trainer, on one model and one State.
#include <ATen/ATen.h>
#include <c10/core/GradMode.h>

#include <cmath>
#include <cstdio>
#include <set>

#include "detail/label_records.h"
#include "detail/teacher_loading.h"
#include "stunt/core/error.h"
#include "stunt/core/logging.h"
#include "stunt/core/sha256.h"
#include "stunt/io/dataset.h"
#include "stunt/io/safetensors.h"
#include "stunt/model/evaluate.h"
#include "stunt/prune/gradual_schedule.h"
#include "stunt/pseudolabel/corpus.h"
#include "stunt/pseudolabel/label_set.h"
#include "stunt/quant/quantization_plan.h"
#include "stunt/recipe/training.h"
#include "stunt/train/classification.h"
#include "stunt/train/sentence_embedding.h"
#include "stunt/train/seq2seq.h"
#include "stunt/train/teacher_labels.h"

namespace stunt::recipe {
namespace {

/// Modifiers that exist only to shape training.
const std::set<std::string>& training_only_types() {
  static const std::set<std::string> types = {
      "EpochRangeModifier",           "SetLearningRateModifier",
      "LearningRateFunctionModifier", "SetWeightDecayModifier",
      "MovementPruningModifier",      "DistillationModifier",
      "OutputDistillationModifier",   "PerLayerDistillationModifier",
      "AttentionDistillationModifier"};
  return types;
}

/// Whether a modifier's arguments schedule it inside training: llm-compressor's start, end or
/// update set (>= 0), a SparseML start_epoch after 0, or epochs that span a range.
bool has_schedule(const ModifierSpec& spec) {
  auto number = [&](const char* key) -> std::optional<double> {
    if (!spec.args.contains(key) || !spec.args.at(key).is_number()) return std::nullopt;
    return spec.args.at(key).get<double>();
  };
  for (const char* key : {"start", "end", "update"}) {
    if (number(key).value_or(-1) >= 0) return true;
  }
  if (number("start_epoch").value_or(-1) > 0) return true;
  const auto start = number("start_epoch"), end = number("end_epoch");
  return start && end && *end >= 0 && *end != *start;
}

/// FNV-1a, 64 bits, as hex: a stable name for what a checkpoint belongs to.
std::string fingerprint_of(const std::string& text) {
  uint64_t hash = 0xcbf29ce484222325ULL;
  for (unsigned char c : text) {
    hash ^= c;
    hash *= 0x100000001b3ULL;
  }
  char out[17];
  std::snprintf(out, sizeof out, "%016llx", static_cast<unsigned long long>(hash));
  return out;
}

/// The labelled records of `options.dataset`, each cut to seq_len tokens.
train::LabeledTextData labeled_records(const TrainingRunOptions& options) {
  STUNT_CHECK_AS(ValueError, options.tokenizer != nullptr, options.dataset.string(),
                 ": classification trains on text, which needs the model's tokenizer");
  io::DatasetOptions read_options;
  read_options.format = io::DatasetFormat::Jsonl;
  read_options.max_length = options.seq_len;
  auto dataset = io::TextDataset::open(options.dataset, *options.tokenizer, read_options);
  std::vector<io::Sample> samples = dataset.read();
  const int64_t pad_id =
      options.tokenizer->pad_id().value_or(options.tokenizer->eos_id().value_or(0));
  log::info("training data: ", samples.size(), " labelled records (up to ", options.seq_len,
            " tokens) from ", options.dataset.string());
  return train::LabeledTextData(
      std::move(samples), pad_id, options.dataset.string(),
      str(options.dataset.string(), " (", std::filesystem::file_size(options.dataset),
          " bytes, records cut to ", options.seq_len, ")"));
}

std::string records_fingerprint(const TrainingRunOptions& options) {
  return str(options.dataset.string(), " (", std::filesystem::file_size(options.dataset),
             " bytes, records cut to ", options.seq_len, ")");
}

/// The text of `field` in `record`; FormatError naming the file and line otherwise.
std::string text_field(const nlohmann::json& record, const char* field, const std::string& where,
                       const char* expected) {
  const auto it = record.find(field);
  STUNT_CHECK_AS(FormatError, it != record.end() && it->is_string(), where, ": expected \"", field,
                 "\" (a string); ", expected);
  return it->get<std::string>();
}

/// Source/target records of `options.dataset` ("text" and "target"), each cut to seq_len.
train::Seq2SeqData seq2seq_records(const TrainingRunOptions& options, int64_t decoder_start) {
  STUNT_CHECK_AS(ValueError, options.tokenizer != nullptr, options.dataset.string(),
                 ": sequence-to-sequence training reads text, which needs the model's tokenizer");
  const io::Tokenizer& tokenizer = *options.tokenizer;
  std::vector<train::Seq2SeqExample> examples;
  io::for_each_jsonl_record(options.dataset, [&](const nlohmann::json& record, int64_t line) {
    const std::string where = str(options.dataset.string(), ":", line);
    const char* expected = "sequence-to-sequence records hold \"text\" (the input) and \"target\"";
    train::Seq2SeqExample e;
    e.source = io::encode_truncated(tokenizer, text_field(record, "text", where, expected),
                                    options.seq_len);
    e.target = io::encode_truncated(tokenizer, text_field(record, "target", where, expected),
                                    options.seq_len);
    e.line = line;
    examples.push_back(std::move(e));
  });
  log::info("training data: ", examples.size(), " source/target records (up to ", options.seq_len,
            " tokens each) from ", options.dataset.string());
  return train::Seq2SeqData(std::move(examples), detail::pad_id_of(tokenizer), decoder_start,
                            options.dataset.string(), records_fingerprint(options));
}

/// Sentence pairs with scores ("text", "text_pair", "score") or texts with target embeddings
/// ("text", "embedding") of `options.dataset`, each text cut to seq_len.
train::SentenceEmbeddingData embedding_records(const TrainingRunOptions& options) {
  STUNT_CHECK_AS(ValueError, options.tokenizer != nullptr, options.dataset.string(),
                 ": sentence-embedding training reads text, which needs the model's tokenizer");
  const io::Tokenizer& tokenizer = *options.tokenizer;
  std::vector<train::EmbeddingExample> examples;
  io::for_each_jsonl_record(options.dataset, [&](const nlohmann::json& record, int64_t line) {
    const std::string where = str(options.dataset.string(), ":", line);
    const char* expected =
        "sentence-embedding records hold \"text\" with \"text_pair\" and \"score\", or \"text\" "
        "with \"embedding\" (an array of numbers)";
    train::EmbeddingExample e;
    e.line = line;
    e.text = io::encode_truncated(tokenizer, text_field(record, "text", where, expected),
                                  options.seq_len);
    if (record.contains("embedding")) {
      const nlohmann::json& target = record["embedding"];
      STUNT_CHECK_AS(FormatError, target.is_array() && !target.empty(), where,
                     ": expected \"embedding\" to be a non-empty array of numbers");
      for (const nlohmann::json& v : target) {
        STUNT_CHECK_AS(FormatError, v.is_number(), where,
                       ": expected \"embedding\" to hold numbers, found ", v.dump());
        e.target.push_back(v.get<float>());
      }
    } else {
      e.pair = io::encode_truncated(tokenizer, text_field(record, "text_pair", where, expected),
                                    options.seq_len);
      const auto score = record.find("score");
      STUNT_CHECK_AS(FormatError, score != record.end() && score->is_number(), where,
                     ": expected \"score\" (a number, the pair's similarity); ", expected);
      e.score = score->get<double>();
    }
    examples.push_back(std::move(e));
  });
  log::info("training data: ", examples.size(), " sentence-embedding records from ",
            options.dataset.string());
  return train::SentenceEmbeddingData(std::move(examples), detail::pad_id_of(tokenizer),
                                      options.dataset.string(), records_fingerprint(options));
}

/// The mean loss over held-out `data` (per target token, with its perplexity, when
/// `per_token`), in batches of `batch_size`, without autograd.
train::Evaluation loss_evaluation(std::shared_ptr<const train::TrainingData> data,
                                  train::LossFunction loss, int64_t batch_size, bool per_token) {
  return [data, loss, batch_size, per_token](model::Model& model) {
    c10::NoGradGuard no_grad;
    double sum = 0.0, weight = 0.0;
    for (int64_t first = 0; first < data->size(); first += batch_size) {
      std::vector<int64_t> examples;
      for (int64_t i = first; i < std::min(first + batch_size, data->size()); ++i) {
        examples.push_back(i);
      }
      const train::TrainingBatch batch = data->batch(examples);
      const double w = per_token ? (batch.labels != -100).sum().item<double>()
                                 : static_cast<double>(examples.size());
      sum += loss(model, batch).loss.item<double>() * w;
      weight += w;
    }
    std::map<std::string, double> out{{"loss", sum / weight}};
    if (per_token) out["perplexity"] = std::exp(sum / weight);
    return out;
  };
}

/// The training windows of `options.dataset`.
train::TokenWindowData training_windows(const TrainingRunOptions& options) {
  STUNT_CHECK_AS(ValueError, !options.dataset.empty(),
                 "the recipe has a train stage; give the training data with --dataset (text or "
                 "JSONL with a \"text\" field)");
  const auto size = std::filesystem::file_size(options.dataset);
  if (options.dataset.extension() == ".safetensors") {
    // Token ids as they are: each row of input_ids [samples, tokens] is a window.
    const auto file = io::SafetensorsFile::open(options.dataset);
    STUNT_CHECK_AS(FormatError, file->contains("input_ids"), options.dataset.string(),
                   ": no tensor named input_ids; expected input_ids [samples, tokens]");
    const at::Tensor ids = file->tensor("input_ids");
    STUNT_CHECK_AS(FormatError,
                   ids.dim() == 2 && ids.size(1) >= 2 &&
                       (ids.scalar_type() == at::kLong || ids.scalar_type() == at::kInt),
                   options.dataset.string(),
                   ": input_ids must be int64 or int32 [samples, tokens] "
                   "with at least 2 tokens, found ",
                   ids.scalar_type(), " ", ids.sizes());
    const at::Tensor rows = ids.to(at::kLong).contiguous();
    std::vector<std::vector<int64_t>> windows;
    for (int64_t r = 0; r < rows.size(0); ++r) {
      const int64_t* begin = rows.data_ptr<int64_t>() + r * rows.size(1);
      windows.emplace_back(begin, begin + rows.size(1));
    }
    return train::TokenWindowData(std::move(windows),
                                  str(options.dataset.string(), " (", size, " bytes)"));
  }
  STUNT_CHECK_AS(ValueError, options.tokenizer != nullptr, options.dataset.string(),
                 ": training on text needs the model's tokenizer");
  STUNT_CHECK_AS(ValueError, options.seq_len >= 2, "--seq-len ", options.seq_len,
                 ": training windows need at least 2 tokens");
  std::vector<std::vector<int64_t>> windows =
      io::token_windows(options.dataset, *options.tokenizer, options.seq_len);
  log::info("training data: ", windows.size(), " windows of ", options.seq_len, " tokens from ",
            options.dataset.string());
  return train::TokenWindowData(
      std::move(windows),
      str(options.dataset.string(), " (", size, " bytes, windows of ", options.seq_len, ")"));
}

/// The measurement of options.eval_data for `task`: accuracy of a classifier, or perplexity.
train::Evaluation held_out_evaluation(const TrainingRunOptions& options, TrainingTask task) {
  TrainingRunOptions held_out = options;
  held_out.dataset = options.eval_data;
  model::EvalOptions eval_options;
  eval_options.batch_size = options.batch_size;
  // The held-out ids are read and checked once; every evaluation reuses them.
  auto ids = std::make_shared<std::vector<std::vector<int64_t>>>();
  auto as_ids = [&](const train::TrainingData& data, int64_t i) {
    const train::TrainingBatch one = data.batch({i});
    const int64_t* begin = one.inputs.input_ids.data_ptr<int64_t>();
    ids->emplace_back(begin, begin + one.inputs.input_ids.numel());
    return one;
  };
  if (task == TrainingTask::Classification) {
    const train::LabeledTextData records = labeled_records(held_out);
    auto labels = std::make_shared<std::vector<int64_t>>();
    for (int64_t i = 0; i < records.size(); ++i) {
      labels->push_back(as_ids(records, i).labels.item<int64_t>());
    }
    return [ids, labels, pad_id = records.pad_id(), eval_options](model::Model& model) {
      const model::AccuracyResult r = model::accuracy(model, *ids, *labels, pad_id, eval_options);
      return std::map<std::string, double>{{"accuracy", r.accuracy}};
    };
  }
  const train::TokenWindowData windows = training_windows(held_out);
  for (int64_t i = 0; i < windows.size(); ++i) as_ids(windows, i);
  return [ids, eval_options](model::Model& model) {
    const model::PerplexityResult r = model::perplexity(model, *ids, eval_options);
    return std::map<std::string, double>{{"perplexity", r.perplexity}};
  };
}

/// Trains stages [index, end) as one run (training_run_end).
void run_train_stages(const Recipe& recipe, size_t index, size_t end, model::Model& model,
                      State& state, const TrainingRunOptions& options,
                      const train::TrainingData& data, const train::LossFunction& loss,
                      const train::Evaluation& evaluation) {
  state.model = &model;
  std::vector<std::unique_ptr<TrainingModifier>> modifiers;
  std::string name;
  double schedule_end = 0.0;
  for (size_t s = index; s < end; ++s) {
    const Stage& stage = recipe.stages[s];
    for (const ModifierSpec& spec : stage.modifiers) {
      ModifierSpec located = spec;
      located.source = recipe.source;
      modifiers.push_back(make_training_modifier(located, recipe.syntax));
      modifiers.back()->resolve(state);
    }
    name += (name.empty() ? "" : " + ") + (stage.name.empty() ? "train stage" : stage.name);
    schedule_end = std::max(schedule_end, schedule_end_epoch(stage));
  }
  train::TrainerOptions trainer;
  trainer.batch_size = options.batch_size;
  trainer.gradient_accumulation = options.gradient_accumulation;
  trainer.epochs = options.epochs;
  trainer.max_steps = options.max_steps;
  trainer.learning_rate.peak = options.learning_rate;
  trainer.learning_rate.warmup_steps = options.warmup_steps;
  trainer.learning_rate.decay = options.decay;
  trainer.optimizer.weight_decay = options.weight_decay;
  trainer.max_grad_norm = options.max_grad_norm;
  trainer.seed = options.seed;
  trainer.checkpoint_every = options.checkpoint_every;
  trainer.resume = options.resume;
  trainer.metrics_file = options.metrics_file;
  trainer.process_group = options.process_group;
  trainer.evaluate = evaluation;
  trainer.eval_every = options.eval_every;
  if (!options.checkpoint_dir.empty()) {
    trainer.checkpoint_dir = options.checkpoint_dir / str("stage-", index);
  }
  // A schedule that ends later than the run would stop short of its final sparsity: the run
  // lasts --epochs or until the last schedule ends, whichever is later, unless an
  // EpochRangeModifier or --max-steps says otherwise.
  trainer.epochs = std::max(trainer.epochs, schedule_end);
  for (auto& m : modifiers) m->configure(trainer);
  // A method that starts when the run has ended would be accepted and never act.
  for (auto& m : modifiers) {
    const ModifierSpec& spec = m->spec();
    for (const char* key : {"start_epoch", "start"}) {
      if (!spec.args.contains(key) || !spec.args.at(key).is_number()) continue;
      const double start = spec.args.at(key).get<double>();
      STUNT_CHECK_AS(RecipeError, start <= 0 || start < trainer.epochs, spec.where(), ".", key,
                     ": ", spec.type, " starts at epoch ", start, ", and training lasts ",
                     trainer.epochs,
                     " epochs, so it would never act; train longer (--epochs, or an "
                     "EpochRangeModifier) or start it earlier");
    }
  }
  trainer.run_fingerprint =
      fingerprint_of(str(options.fingerprint, "\n", recipe.to_yaml(), "\nstage ", index));

  train::Trainer run(model, data, loss, trainer);
  for (auto& m : modifiers) {
    for (train::TrainingCallbacks* cb : m->callbacks()) run.add_callbacks(*cb);
  }
  log::info(name, ": ", run.total_steps(), " steps of ",
            trainer.batch_size * trainer.gradient_accumulation, " windows (", run.steps_per_epoch(),
            " per epoch)");
  const train::TrainResult result = run.run();
  if (result.interrupted) {
    throw Interrupted(str("training stopped after step ", result.steps,
                          "; rerun the same command "
                          "with --resume ",
                          options.checkpoint_dir.string(), " to continue"));
  }
  c10::NoGradGuard no_grad;
  for (auto& m : modifiers) m->finish(state);
  // The model goes on as plain tensors: later stages and saving record no graph.
  for (auto& [name, tensor] : model.prepare_training()) tensor.requires_grad_(false);
}

}  // namespace

TrainingTask parse_training_task(const std::string& name, const std::string& where) {
  if (name == "auto") return TrainingTask::Auto;
  if (name == "causal-lm") return TrainingTask::CausalLm;
  if (name == "classification") return TrainingTask::Classification;
  if (name == "sentence-embedding") return TrainingTask::SentenceEmbedding;
  if (name == "seq2seq") return TrainingTask::Seq2Seq;
  throw ValueError(str(where, " '", name,
                       "': expected auto, causal-lm, classification, sentence-embedding or "
                       "seq2seq"));
}

double schedule_end_epoch(const Stage& stage) {
  double end = 0.0;
  for (const ModifierSpec& spec : stage.modifiers) {
    for (const char* key : {"end_epoch", "end"}) {
      if (spec.args.contains(key) && spec.args.at(key).is_number()) {
        end = std::max(end, spec.args.at(key).get<double>());
      }
    }
  }
  return end;
}

size_t training_run_end(const Recipe& recipe, size_t first) {
  size_t end = first + 1;
  if (recipe.syntax != RecipeSyntax::SparseML) return end;
  while (end < recipe.stages.size() && is_train_stage(recipe.stages[end])) ++end;
  return end;
}

bool is_train_stage(const Stage& stage) {
  if (stage.run_type == "train") return true;
  if (stage.run_type == "oneshot") return false;
  for (const ModifierSpec& spec : stage.modifiers) {
    if (training_only_types().count(spec.type) || has_schedule(spec)) return true;
  }
  return false;
}

State run_recipe(const Recipe& recipe, std::unique_ptr<model::HfModel>& model,
                 const OneshotOptions& oneshot, const TrainingRunOptions& training) {
  // Everything that can be refused without the model, before any work.
  const bool loads_teacher = detail::check_teacher(recipe, training);
  std::unique_ptr<train::TrainingData> data;
  bool trains = false;
  for (const Stage& stage : recipe.stages) trains |= is_train_stage(stage);
  STUNT_CHECK_AS(
      ValueError,
      !training.prompt_loss || (trains && !training.labels.empty() &&
                                pseudolabel::Manifest::read(training.labels).kind == "generate"),
      "--prompt-loss: the prompts learned are those of a teacher's generations (--labels "
      "of kind generate, compress label --kind generate) in a train stage of ",
      recipe.source, "; leave it out for other training");
  train::LossFunction loss = train::causal_lm_loss;
  train::Evaluation evaluation;
  if (trains) {
    TrainingTask task = training.task;
    if (task == TrainingTask::Auto) {
      if (!model->match({"classifier"}).empty()) {
        task = TrainingTask::Classification;
      } else if (model->architecture() == "t5") {
        task = TrainingTask::Seq2Seq;
      } else if (model->architecture() == "bert") {
        task = TrainingTask::SentenceEmbedding;
      } else {
        task = TrainingTask::CausalLm;
      }
    }
    STUNT_CHECK_AS(ValueError,
                   training.labels.empty() || task == TrainingTask::CausalLm ||
                       task == TrainingTask::SentenceEmbedding || task == TrainingTask::Seq2Seq,
                   "--labels ", training.labels.string(),
                   ": students learn from stored labels as language models (the teacher's "
                   "log-probabilities or generations), encoder-decoders (its generations) or "
                   "sentence encoders (its embeddings); this ",
                   model->architecture(), " run's task is another");
    STUNT_CHECK_AS(ValueError, !training.prompt_loss || task == TrainingTask::CausalLm,
                   "--prompt-loss: a causal language model learns its prompts; this ",
                   model->architecture(),
                   " run's task is another (an encoder-decoder's prompt is its encoder's input)");
    if (task == TrainingTask::Seq2Seq) {
      STUNT_CHECK_AS(ValueError, model->architecture() == "t5", training.dataset.string(),
                     ": sequence-to-sequence training needs an encoder-decoder model (T5); this "
                     "is a ",
                     model->architecture(), " model");
      data = std::make_unique<train::Seq2SeqData>(
          training.labels.empty()
              ? seq2seq_records(training, model->decoder_start_token_id())
              : detail::label_seq2seq_records(training, model->decoder_start_token_id()));
      loss = train::seq2seq_loss;
      if (!training.eval_data.empty()) {
        TrainingRunOptions held_out = training;
        held_out.dataset = training.eval_data;
        evaluation = loss_evaluation(std::make_shared<train::Seq2SeqData>(seq2seq_records(
                                         held_out, model->decoder_start_token_id())),
                                     loss, training.batch_size, true);
      }
    } else if (task == TrainingTask::SentenceEmbedding) {
      const model::SentencePooling pooling = model::SentencePooling::from_folder(model->source());
      data = std::make_unique<train::SentenceEmbeddingData>(
          training.labels.empty() ? embedding_records(training)
                                  : detail::label_embedding_records(training));
      loss = [pooling](model::Model& m, const train::TrainingBatch& b) {
        return train::sentence_embedding_loss(m, b, pooling);
      };
      if (!training.eval_data.empty()) {
        TrainingRunOptions held_out = training;
        held_out.dataset = training.eval_data;
        evaluation = loss_evaluation(
            std::make_shared<train::SentenceEmbeddingData>(embedding_records(held_out)), loss,
            training.batch_size, false);
      }
    } else if (task == TrainingTask::Classification) {
      auto records = std::make_unique<train::LabeledTextData>(labeled_records(training));
      const std::vector<model::Layer*> head = model->match({"classifier"});
      STUNT_CHECK_AS(ValueError, !head.empty(), training.dataset.string(),
                     ": classification trains a model with a classifier head (a layer named "
                     "classifier, as BertForSequenceClassification has); this ",
                     model->architecture(), " model has none");
      const int64_t classes = head.front()->weight.size(0);
      STUNT_CHECK_AS(ValueError, records->classes() <= classes, training.dataset.string(),
                     ": label ", records->classes() - 1, " is not a class of the model, which has ",
                     classes, "; give the model as many classes (num_labels) as the data has");
      data = std::move(records);
      loss = train::sequence_classification_loss;
    } else if (!training.labels.empty() &&
               pseudolabel::Manifest::read(training.labels).kind == "generate") {
      data = std::make_unique<train::CompletionData>(detail::label_generation_records(training));
    } else if (!training.labels.empty()) {
      auto labels = std::make_unique<train::TeacherLogitsData>(
          training.labels, training.seq_len,
          training.tokenizer != nullptr ? detail::pad_id_of(*training.tokenizer) : 0);
      const int64_t vocabulary = model->config().integer("vocab_size");
      STUNT_CHECK_AS(ValueError, labels->largest_token() < vocabulary, "--labels ",
                     training.labels.string(), ": token id ", labels->largest_token(),
                     " is outside the student's vocabulary of ", vocabulary,
                     " tokens; the labels come from a teacher with another tokenizer, and "
                     "token-level distillation needs the student's");
      data = std::move(labels);
    } else {
      data = std::make_unique<train::TokenWindowData>(training_windows(training));
    }
    if (!training.eval_data.empty() && !evaluation) {
      evaluation = held_out_evaluation(training, task);
    }
  }

  std::unique_ptr<model::HfModel> teacher =
      loads_teacher ? detail::load_teacher(training.teacher) : nullptr;
  State state;
  // Stored outputs stand in for a teacher only when none is loaded.
  state.stored_teacher = !training.labels.empty() && !loads_teacher;
  size_t i = 0;
  while (i < recipe.stages.size()) {
    if (is_train_stage(recipe.stages[i])) {
      state.teacher = teacher.get();
      STUNT_CHECK_AS(RecipeError, state.quantization.empty(), recipe.source, ": ",
                     recipe.stages[i].name,
                     ": trains a model that an earlier stage quantized; fine-tune before "
                     "quantizing, or quantize during training (a QuantizationModifier in the train "
                     "stage)");
      const size_t end = training_run_end(recipe, i);
      run_train_stages(recipe, i, end, *model, state, training, *data, loss, evaluation);
      i = end;
      continue;
    }
    // The following run of one-shot stages, as one one-shot recipe.
    Recipe part = recipe;
    part.stages.clear();
    while (i < recipe.stages.size() && !is_train_stage(recipe.stages[i])) {
      part.stages.push_back(recipe.stages[i]);
      if (part.stages.back().run_type.empty()) part.stages.back().run_type = "oneshot";
      ++i;
    }
    const bool first = part.stages.front().name == recipe.stages.front().name;
    if (!first) {
      for (const ModifierCheck& check : check_oneshot(part)) {
        STUNT_CHECK_AS(RecipeError, !check.changes_structure, check.spec->where(), ": ",
                       check.spec->type,
                       " changes the model's structure, so it must come before every other "
                       "modifier of the recipe");
      }
    }
    state = run_oneshot(part, model, oneshot, std::move(state));
  }
  if (trains) quant::apply_input_quantization(*model, state.quantization);
  return state;
}

}  // namespace stunt::recipe
