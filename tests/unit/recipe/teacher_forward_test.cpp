// TeacherForward: the distillation modifiers of a run share one teacher forward per batch.
#include "recipe/detail/teacher_forward.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "stunt/model/load.h"
#include "test_util.h"
#include "tiny_llama.h"

namespace stunt::recipe {
namespace {

namespace tiny = test::tiny_llama;

at::Tensor calibration_forward(model::Model& teacher, const model::Batch& batch) {
  const model::CalibrationKernelScope scope;
  return teacher.forward(batch).logits;
}

TEST(TeacherForward, OneForwardPerBatchForEveryReader) {
  test::TempDir dir;
  tiny::write(dir / "tiny", tiny::config(), tiny::weights());
  auto teacher = model::load_dense_model(dir / "tiny");
  int forwards = 0;
  model::Layer& first = *teacher->layers().front();
  model::InputCapture count(*teacher, {&first},
                            [&](const model::Layer&, const at::Tensor&) { ++forwards; });
  State state;
  state.teacher = teacher.get();
  auto shared = detail::join_teacher_forward(state);
  EXPECT_EQ(detail::join_teacher_forward(state), shared);  // a second reader, the same forward

  model::Batch batch;
  batch.input_ids = at::randint(tiny::kVocab, {2, 5}, at::kLong);
  const model::Output a = (*shared)(batch, 0);
  const model::Output b = (*shared)(batch, 0);
  EXPECT_EQ(forwards, 1);
  EXPECT_TRUE(a.logits.is_same(b.logits));
  // The teacher runs with the calibration kernels (faster; other last bits than ATen's).
  EXPECT_TRUE(a.logits.equal(calibration_forward(*teacher, batch)));
  forwards = 0;

  // Both readers had it: the same tensor again is another micro-batch, run again.
  (*shared)(batch, 0);
  EXPECT_EQ(forwards, 1);
  // A new step, or the same tensor refilled in place, is another batch even before every
  // reader read the last one (a reader outside its epochs reads nothing).
  (*shared)(batch, 1);
  EXPECT_EQ(forwards, 2);
  batch.input_ids.fill_(3);
  const model::Output refilled = (*shared)(batch, 1);
  EXPECT_EQ(forwards, 3);
  EXPECT_TRUE(refilled.logits.equal(calibration_forward(*teacher, batch)));
  // Another tensor: another batch.
  model::Batch other;
  other.input_ids = batch.input_ids.clone();
  (*shared)(other, 1);
  EXPECT_EQ(forwards, 5);  // counts the check's forward above too
}

}  // namespace
}  // namespace stunt::recipe
