#pragma once
// One teacher forward per batch for every distillation modifier of a run: logit, hidden-state
// and attention distillation each read their part of the same output.

#include <memory>

#include "stunt/model/model.h"
#include "stunt/recipe/modifier.h"

namespace stunt::recipe {

class TeacherForward {
 public:
  explicit TeacherForward(model::Model& teacher) : teacher_(teacher) {}

  /// Another modifier will read every batch's output.
  void add_reader() { ++readers_; }
  /// A reader is done (its modifier finished).
  void remove_reader() { --readers_; }

  /// The teacher's output (no gradients) on `inputs` at optimizer step `step`: computed by the
  /// first reader of these inputs (the same input_ids tensor, unchanged since, in the same step),
  /// handed to the others, and let go once every reader has had it, so that the teacher's
  /// logits do not stay alive through the next student forward.
  model::Output operator()(const model::Batch& inputs, int64_t step);

 private:
  model::Model& teacher_;
  int readers_ = 0;
  int reads_ = 0;
  at::Tensor input_ids_;
  int64_t version_ = 0;
  int64_t step_ = -1;
  model::Output output_;
};

namespace detail {

/// The run's shared teacher forward (State::teacher_forward, made on first use), with the
/// caller counted as a reader. State::teacher must be set.
std::shared_ptr<TeacherForward> join_teacher_forward(State& state);

}  // namespace detail
}  // namespace stunt::recipe
