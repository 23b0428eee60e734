#include "stunt/recipe/oneshot.h"

#include <c10/util/Exception.h>
#include <torch/csrc/autograd/grad_mode.h>

#include "stunt/core/error.h"
#include "stunt/core/logging.h"
#include "stunt/core/progress.h"
#include "stunt/io/dataset.h"
#include "stunt/io/safetensors.h"
#include "stunt/recipe/registry.h"

namespace stunt::recipe {
namespace {

/// One modifier's sequential pass: block by block, capture, apply, propagate.
void sequential_pass(Modifier& modifier, State& state, model::Model& model,
                     const std::vector<model::Batch>& calibration) {
  std::vector<model::BlockState> states;
  states.reserve(calibration.size());
  for (const model::Batch& batch : calibration) states.push_back(model.embed(batch));
  const int blocks = model.num_blocks();
  ProgressOptions progress_options;
  progress_options.unit = "blocks";
  Progress progress(modifier.spec().type + " calibration", blocks + 1, progress_options);
  auto calibrate = [&](int block) {
    modifier.begin_block(state, block);
    const std::vector<model::Layer*> layers = modifier.calibration_layers(state, block);
    if (layers.empty()) return;
    {
      model::InputCapture capture(model, layers,
                                  [&](const model::Layer& layer, const at::Tensor& input) {
                                    modifier.observe(state, layer, input);
                                  });
      state.block_inputs = &states;
      for (size_t b = 0; b < states.size(); ++b) {
        state.batch = b;
        model::BlockState copy = states[b];  // outputs discarded: the weights are about to change
        if (block >= 0) {
          model.run_block(block, copy);
        } else {
          model.head(copy);
        }
      }
    }
    modifier.apply_block(state, block);
    state.block_inputs = nullptr;
  };
  for (int block = 0; block < blocks; ++block) {
    calibrate(block);
    for (model::BlockState& s : states) model.run_block(block, s);
    progress.advance();
  }
  calibrate(-1);
  progress.advance();
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

State run_oneshot(const Recipe& recipe, model::Model& model, const OneshotOptions& options) {
  c10::NoGradGuard no_grad;
  const ModifierRegistry& registry = ModifierRegistry::builtin();
  std::vector<std::unique_ptr<Modifier>> modifiers;
  for (const Stage& stage : recipe.stages) {
    if (!stage.run_type.empty() && stage.run_type != "oneshot") {
      throw RecipeError(str(recipe.source, ": ", stage.name, ": run_type '", stage.run_type,
                            "' needs a training loop; `compress --recipe` runs one-shot stages "
                            "(run_type: oneshot)"));
    }
    for (const ModifierSpec& spec : stage.modifiers) {
      modifiers.push_back(registry.create(spec, recipe.syntax, recipe.source));
    }
  }
  State state;
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

}  // namespace stunt::recipe
