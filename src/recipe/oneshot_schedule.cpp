#include "detail/oneshot_schedule.h"

#include "stunt/core/error.h"

namespace stunt::recipe::detail {
namespace {

/// What a modifier with a training schedule would be in a training run, for the error.
std::string what_training_means(const std::string& type) {
  if (type == "QuantizationModifier") {
    return " (a QuantizationModifier with a start is quantization-aware training in "
           "llm-compressor)";
  }
  if (type == "GMPruningModifier" || type == "MagnitudePruningModifier") {
    return " (gradual magnitude pruning while the model fine-tunes)";
  }
  return "";
}

[[noreturn]] void refuse(const ModifierSpec& spec, const std::string& key, const Value& value) {
  throw NotImplementedError(
      str(spec.where(), ".", key, ": ", value.dump(), " schedules ", spec.type,
          " inside a training run", what_training_means(spec.type),
          ", but its stage says run_type: oneshot. Make it a train stage (run_type: train, or no "
          "run_type) and give the training data with --dataset, or remove ",
          key, " (or set it to -1) to run it one-shot"));
}

}  // namespace

void check_oneshot_schedule(const ModifierSpec& spec) {
  const ArgReader a = spec.reader();
  for (const char* key : {"start", "end", "update"}) {
    if (a.has(key) && a[key].get<double>() >= 0) refuse(spec, key, a[key]);
  }
  // SparseML counts epochs from 0: a modifier that starts later needs epochs to pass first.
  // (end_epoch and update_frequency only matter once something trains; a gradual schedule that
  // spans epochs is refused by the pruning modifiers, which know what it would do.)
  if (a.has("start_epoch") && a["start_epoch"].get<double>() > 0) {
    refuse(spec, "start_epoch", a["start_epoch"]);
  }
  a.contains("end_epoch");
  a.contains("update_frequency");
}

}  // namespace stunt::recipe::detail
