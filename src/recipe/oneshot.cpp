#include "stunt/recipe/oneshot.h"

#include <ATen/ATen.h>
#include <c10/util/Exception.h>
#include <torch/csrc/autograd/grad_mode.h>

#include <chrono>
#include <set>

#include "stunt/core/error.h"
#include "stunt/core/logging.h"
#include "stunt/core/progress.h"
#include "stunt/io/dataset.h"
#include "stunt/io/safetensors.h"
#include "stunt/recipe/registry.h"
#include "stunt/recipe/training.h"

namespace stunt::recipe {
namespace {

/// Tokens per forward when a pass joins calibration batches: large enough for efficient matrix
/// products on a CPU, small enough that a Llama MLP's intermediate stays in tens of MiB.
constexpr int64_t kJoinedForwardTokens = 4096;

/// Thrown by a pass's capture once every layer it wants has its input: the rest of the
/// block's forward would be discarded.
struct ForwardDone {};

/// The calibration batches joined into forwards of up to kJoinedForwardTokens tokens, or as they
/// are when they cannot be joined (different lengths, masks on some only, TorchScript inputs).
std::vector<model::Batch> joined_batches(const std::vector<model::Batch>& calibration) {
  for (const model::Batch& b : calibration) {
    const model::Batch& first = calibration.front();
    if (!b.inputs.empty() || !b.input_ids.defined() ||
        b.input_ids.size(1) != first.input_ids.size(1) ||
        b.attention_mask.defined() != first.attention_mask.defined() ||
        b.decoder_input_ids.defined() != first.decoder_input_ids.defined() ||
        (b.decoder_input_ids.defined() &&
         b.decoder_input_ids.size(1) != first.decoder_input_ids.size(1))) {
      return calibration;
    }
  }
  std::vector<model::Batch> joined;
  std::vector<const model::Batch*> pending;
  int64_t rows = 0;
  auto flush = [&] {
    if (pending.empty()) return;
    model::Batch batch;
    std::vector<at::Tensor> ids, masks, decoder_ids;
    for (const model::Batch* b : pending) {
      ids.push_back(b->input_ids);
      if (b->attention_mask.defined()) masks.push_back(b->attention_mask);
      if (b->decoder_input_ids.defined()) decoder_ids.push_back(b->decoder_input_ids);
    }
    batch.input_ids = at::cat(ids);
    if (!masks.empty()) batch.attention_mask = at::cat(masks);
    if (!decoder_ids.empty()) batch.decoder_input_ids = at::cat(decoder_ids);
    joined.push_back(std::move(batch));
    pending.clear();
    rows = 0;
  };
  for (const model::Batch& b : calibration) {
    const int64_t length = b.input_ids.size(1);
    if (!pending.empty() && (rows + b.input_ids.size(0)) * length > kJoinedForwardTokens) flush();
    pending.push_back(&b);
    rows += b.input_ids.size(0);
  }
  flush();
  return joined;
}

/// One modifier's sequential pass: block by block, capture, apply, propagate.
void sequential_pass(Modifier& modifier, State& state, model::Model& model,
                     const std::vector<model::Batch>& calibration) {
  const model::CalibrationKernelScope calibration_kernels;
  const std::vector<model::Batch> batches =
      modifier.batch_invariant() ? joined_batches(calibration) : calibration;
  if (batches.size() != calibration.size()) {
    log::debug(modifier.spec().type, ": ", calibration.size(), " calibration batches run as ",
               batches.size(), " forwards");
  }
  std::vector<model::BlockState> states;
  states.reserve(batches.size());
  for (const model::Batch& batch : batches) states.push_back(model.embed(batch));
  const int blocks = model.num_blocks();
  ProgressOptions progress_options;
  progress_options.unit = "blocks";
  Progress progress(modifier.spec().type + " calibration", blocks + 1, progress_options);
  // A transformer block calls each layer once, so the forward can stop at the last wanted
  // input, unless its outputs feed the next block. A TorchScript graph may call a layer twice
  // and runs to the end.
  const bool keep_outputs = modifier.preserves_outputs();
  const bool stop_when_done = !keep_outputs && model.architecture() != "torchscript";
  using Clock = std::chrono::steady_clock;
  auto seconds_since = [](Clock::time_point t) {
    return std::chrono::duration<double>(Clock::now() - t).count();
  };
  double calibrate_seconds = 0, apply_seconds = 0, propagate_seconds = 0;
  // The layers of `block` (-1: the head) whose inputs the modifier wants.
  auto wanted_layers = [&](int block) {
    modifier.begin_block(state, block);
    return modifier.calibration_layers(state, block);
  };
  auto calibrate = [&](int block, const std::vector<model::Layer*>& layers) {
    if (layers.empty()) {
      if (keep_outputs && block >= 0) {
        for (model::BlockState& s : states) model.run_block(block, s);
      }
      return;
    }
    {
      std::set<const model::Layer*> seen;
      model::InputCapture capture(model, layers,
                                  [&](const model::Layer& layer, const at::Tensor& input) {
                                    modifier.observe(state, layer, input);
                                    seen.insert(&layer);
                                    if (stop_when_done && seen.size() == layers.size()) {
                                      throw ForwardDone{};
                                    }
                                  });
      state.block_inputs = &states;
      for (size_t b = 0; b < states.size(); ++b) {
        state.batch = b;
        seen.clear();
        // Outputs are discarded, as the weights are about to change, unless they stay valid.
        model::BlockState copy;
        model::BlockState& run = keep_outputs && block >= 0 ? states[b] : (copy = states[b]);
        try {
          if (block >= 0) {
            model.run_block(block, run);
          } else {
            model.head(run);
          }
        } catch (const ForwardDone&) {
        }
      }
    }
    const auto applying = Clock::now();
    modifier.apply_block(state, block);
    apply_seconds += seconds_since(applying);
    state.block_inputs = nullptr;
  };
  std::vector<model::Layer*> layers = wanted_layers(blocks > 0 ? 0 : -1);
  for (int block = 0; block < blocks; ++block) {
    const auto start = Clock::now();
    calibrate(block, layers);
    const int next = block + 1 < blocks ? block + 1 : -1;
    layers = wanted_layers(next);
    const auto propagating = Clock::now();
    // The last block's outputs only matter when the head calibrates too (it rarely does:
    // lm_head is usually ignored).
    if (!keep_outputs && (next >= 0 || !layers.empty())) {
      for (model::BlockState& s : states) model.run_block(block, s);
    }
    propagate_seconds += seconds_since(propagating);
    calibrate_seconds += seconds_since(start);
    progress.advance();
  }
  calibrate(-1, layers);
  progress.advance();
  log::debug(modifier.spec().type, " pass: ", calibrate_seconds - propagate_seconds - apply_seconds,
             " s capturing, ", apply_seconds, " s applying, ", propagate_seconds, " s propagating");
}

}  // namespace

std::vector<model::Batch> load_calibration(const std::filesystem::path& path,
                                           const io::Tokenizer* tokenizer,
                                           const CalibrationOptions& options) {
  STUNT_CHECK_AS(ValueError,
                 options.num_samples > 0 && options.seq_len > 0 && options.batch_size > 0,
                 "calibration needs positive num_samples, seq_len and batch_size");
  STUNT_CHECK_AS(IoError, std::filesystem::exists(path), "calibration data ", path.string(),
                 " does not exist");
  at::Tensor ids;
  at::Tensor mask;
  if (path.extension() == ".safetensors") {
    auto file = io::SafetensorsFile::open(path);
    STUNT_CHECK_AS(FormatError, file->contains("input_ids"), path.string(),
                   ": no tensor named input_ids; expected input_ids [samples, tokens] of int64");
    ids = file->tensor("input_ids");
    STUNT_CHECK_AS(
        FormatError,
        ids.dim() == 2 && (ids.scalar_type() == at::kLong || ids.scalar_type() == at::kInt),
        path.string(), ": input_ids must be int64 or int32 [samples, tokens], found ",
        ids.scalar_type(), " ", ids.sizes());
    ids =
        ids.to(at::kLong).narrow(0, 0, std::min<int64_t>(ids.size(0), options.num_samples)).clone();
    if (file->contains("attention_mask")) {
      mask = file->tensor("attention_mask").to(at::kLong);
      STUNT_CHECK_AS(FormatError,
                     mask.dim() == 2 && mask.size(1) == ids.size(1) && mask.size(0) >= ids.size(0),
                     path.string(), ": attention_mask ", mask.sizes(), " does not match input_ids ",
                     ids.sizes());
      mask = mask.narrow(0, 0, ids.size(0)).clone();
    }
  } else {
    STUNT_CHECK_AS(ValueError, tokenizer != nullptr, path.string(),
                   ": text calibration data needs the model's tokenizer");
    const auto samples = io::calibration_samples(path, *tokenizer, options.num_samples,
                                                 options.seq_len, options.seed);
    ids = io::pad_batch(samples, 0).input_ids;
  }
  std::vector<model::Batch> batches;
  for (int64_t start = 0; start < ids.size(0); start += options.batch_size) {
    const int64_t rows = std::min(options.batch_size, ids.size(0) - start);
    model::Batch batch;
    batch.input_ids = ids.narrow(0, start, rows);
    if (mask.defined()) batch.attention_mask = mask.narrow(0, start, rows);
    batches.push_back(std::move(batch));
  }
  log::info("calibration: ", ids.size(0), " samples of ", ids.size(1), " tokens from ",
            path.string());
  return batches;
}

namespace {

/// Creates one modifier for a one-shot run, with every check that needs no model: the stage's
/// run type, the modifier's own argument checks (in create), and structure changes coming first.
std::unique_ptr<Modifier> create_for_oneshot(const Recipe& recipe, const Stage& stage,
                                             const ModifierSpec& spec, bool after_other) {
  if (!stage.run_type.empty() && stage.run_type != "oneshot") {
    throw RecipeError(str(recipe.source, ": ", stage.name, ": run_type '", stage.run_type,
                          "' is not a one-shot stage; train stages run through the trainer "
                          "(compress --recipe with --dataset)"));
  }
  std::unique_ptr<Modifier> modifier =
      ModifierRegistry::builtin().create(spec, recipe.syntax, recipe.source);
  if (modifier->changes_structure() && after_other) {
    throw RecipeError(str(spec.where(), ": ", spec.type,
                          " changes the model's structure, so it must come before every other "
                          "modifier of the recipe"));
  }
  return modifier;
}

std::vector<std::unique_ptr<Modifier>> create_modifiers(const Recipe& recipe) {
  std::vector<std::unique_ptr<Modifier>> modifiers;
  bool after_other = false;
  for (const Stage& stage : recipe.stages) {
    for (const ModifierSpec& spec : stage.modifiers) {
      modifiers.push_back(create_for_oneshot(recipe, stage, spec, after_other));
      after_other |= !modifiers.back()->changes_structure();
    }
  }
  return modifiers;
}

}  // namespace

std::vector<ModifierCheck> check_oneshot(const Recipe& recipe) {
  std::vector<ModifierCheck> checks;
  bool after_other = false;
  for (const Stage& stage : recipe.stages) {
    const bool trains = is_train_stage(stage);
    for (const ModifierSpec& spec : stage.modifiers) {
      ModifierCheck check;
      check.spec = &spec;
      check.trains = trains;
      if (trains) {
        try {
          ModifierRegistry::builtin().validate(spec, recipe.syntax, recipe.source);
          if (!runs_in_training(spec.type, recipe.syntax)) {
            check.refusal = str(recipe.source, ": ", spec.path, ": ", spec.type,
                                " is not implemented yet in train stages (one-shot modifiers "
                                "belong in a one-shot stage)");
          } else {
            // Every argument check that needs no model.
            ModifierSpec located = spec;
            located.source = recipe.source;
            make_training_modifier(located, recipe.syntax);
          }
        } catch (const Error& e) {
          check.refusal = e.what();
        }
        after_other = true;
        checks.push_back(std::move(check));
        continue;
      }
      try {
        const auto modifier = create_for_oneshot(recipe, stage, spec, after_other);
        check.calibrates = modifier->needs_calibration();
        check.changes_structure = modifier->changes_structure();
        after_other |= !modifier->changes_structure();
      } catch (const Error& e) {
        check.refusal = e.what();
        after_other = true;
      }
      checks.push_back(std::move(check));
    }
  }
  return checks;
}

namespace {

State run_modifiers(std::vector<std::unique_ptr<Modifier>> modifiers, model::Model& model,
                    const OneshotOptions& options, State state) {
  c10::NoGradGuard no_grad;
  for (const auto& m : modifiers) {
    if (m->changes_structure()) {
      throw RecipeError(str(m->spec().where(), ": ", m->spec().type,
                            " changes the model's structure, so it must come before every other "
                            "modifier of the recipe (and needs a Hugging Face model)"));
    }
  }
  state.model = &model;
  state.target = options.target;
  state.has_calibration_data = !options.calibration.empty();
  ModifierRunner runner(std::move(modifiers));
  runner.initialize(state);
  for (const auto& m : runner.modifiers()) {
    if (m->needs_calibration() && options.calibration.empty()) {
      throw ValueError(str(m->spec().where(), ": ", m->spec().type,
                           " learns from calibration data; give a dataset (compress --dataset "
                           "FILE: text, JSONL or safetensors input_ids)"));
    }
  }
  runner.start(state);
  for (const auto& m : runner.modifiers()) {
    log::info(m->spec().type, ": ", m->needs_calibration() ? "calibrating on " : "data-free",
              m->needs_calibration() ? str(options.calibration.size(), " batches") : "");
    if (m->needs_calibration()) sequential_pass(*m, state, model, options.calibration);
    m->finish(state);
  }
  runner.end(state);
  runner.finalize(state);
  quant::apply_input_quantization(model, state.quantization);
  return state;
}

}  // namespace

State run_oneshot(const Recipe& recipe, model::Model& model, const OneshotOptions& options) {
  return run_modifiers(create_modifiers(recipe), model, options, State{});
}

State run_oneshot(const Recipe& recipe, std::unique_ptr<model::HfModel>& model,
                  const OneshotOptions& options) {
  return run_oneshot(recipe, model, options, State{});
}

State run_oneshot(const Recipe& recipe, std::unique_ptr<model::HfModel>& model,
                  const OneshotOptions& options, State state) {
  std::vector<std::unique_ptr<Modifier>> modifiers = create_modifiers(recipe);
  size_t structural = 0;
  while (structural < modifiers.size() && modifiers[structural]->changes_structure()) {
    ++structural;
  }
  if (structural > 0 && model->config().has("quantization_config")) {
    const nlohmann::json& q = model->config().json().at("quantization_config");
    const bool sparse_only = q.is_object() && !q.contains("config_groups") &&
                             q.contains("sparsity_config") && q["sparsity_config"].is_object() &&
                             !q["sparsity_config"].empty();
    throw ValueError(str(modifiers.front()->spec().where(), ": ", modifiers.front()->spec().type,
                         " cuts a dense model; ", model->config().source(),
                         sparse_only ? " is stored sparse-compressed. Write it dense first "
                                       "(compress convert FOLDER -o DENSE), then prune that"
                                     : " is quantized. Prune the original model, then quantize"));
  }
  for (size_t i = 0; i < structural; ++i) {
    Modifier& m = *modifiers[i];
    log::info(m.spec().type, ": cutting the model's structure");
    std::unique_ptr<model::HfModel> smaller = m.restructure(*model, options.calibration, state);
    model = std::move(smaller);
  }
  modifiers.erase(modifiers.begin(), modifiers.begin() + static_cast<std::ptrdiff_t>(structural));
  return run_modifiers(std::move(modifiers), *model, options, std::move(state));
}

}  // namespace stunt::recipe
