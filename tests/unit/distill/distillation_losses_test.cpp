// The distillation losses against their formulas written out in float64 ATen, and their
// gradients against the closed forms (logit KD: T · (q − p) per scored position).
#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <torch/autograd.h>
#include <cmath>

#include "stunt/core/error.h"
#include "stunt/distill/hidden_state_loss.h"
#include "stunt/distill/logit_distillation.h"

namespace stunt::distill {
namespace {

at::Tensor random_logits(std::vector<int64_t> shape, uint64_t seed, double spread = 3.0) {
  at::manual_seed(seed);
  return at::randn(shape, at::kDouble) * spread;
}

// SparseML's / ModelOpt's KD for one position: Σ_v p_v (log p_v − log q_v) · T².
double kd_by_hand(const at::Tensor& s, const at::Tensor& t, double T) {
  const at::Tensor p = at::softmax(t / T, -1);
  const at::Tensor log_p = at::log_softmax(t / T, -1);
  const at::Tensor log_q = at::log_softmax(s / T, -1);
  return (p * (log_p - log_q)).sum().item<double>() * T * T;
}

TEST(LogitDistillation, EqualsTheKlFormulaAveragedOverScoredPositions) {
  const at::Tensor student = random_logits({2, 3, 11}, 1);
  const at::Tensor teacher = random_logits({2, 3, 11}, 2);
  const at::Tensor keep = at::tensor({1, 1, 0, 1, 0, 1}, at::kLong).view({2, 3});
  for (const double T : {1.0, 2.0, 0.5}) {
    double expected = 0;
    int scored = 0;
    for (int64_t b = 0; b < 2; ++b) {
      for (int64_t i = 0; i < 3; ++i) {
        if (keep[b][i].item<int64_t>() == 0) continue;
        expected += kd_by_hand(student[b][i], teacher[b][i], T);
        ++scored;
      }
    }
    expected /= scored;
    EXPECT_NEAR(logit_distillation_loss(student, teacher, T, keep).item<double>(), expected, 1e-12)
        << "T = " << T;
  }
  // Every position scored when no mask is given; the same logits give 0.
  double all = 0;
  for (int64_t r = 0; r < 6; ++r) {
    all += kd_by_hand(student.view({6, 11})[r], teacher.view({6, 11})[r], 2.0);
  }
  EXPECT_NEAR(logit_distillation_loss(student, teacher, 2.0).item<double>(), all / 6, 1e-12);
  EXPECT_NEAR(logit_distillation_loss(teacher, teacher, 2.0).item<double>(), 0.0, 1e-12);
}

TEST(LogitDistillation, GradientIsTemperatureTimesTheDifferenceOfTheSoftmaxes) {
  const at::Tensor teacher = random_logits({4, 9}, 3);
  const at::Tensor keep = at::tensor({1, 0, 1, 1}, at::kLong);
  const double T = 2.0;
  at::Tensor student = random_logits({4, 9}, 4).requires_grad_(true);
  logit_distillation_loss(student, teacher, T, keep).backward();
  const at::Tensor q = at::softmax(student.detach() / T, -1);
  const at::Tensor p = at::softmax(teacher / T, -1);
  const at::Tensor expected = T * (q - p) * keep.to(at::kDouble).unsqueeze(1) / 3.0;
  EXPECT_LT((student.grad() - expected).abs().max().item<double>(), 1e-12);
  // The teacher takes no gradient even when it could.
  at::Tensor live_teacher = teacher.clone().requires_grad_(true);
  logit_distillation_loss(student, live_teacher, T).backward();
  EXPECT_FALSE(live_teacher.grad().defined());
}

TEST(LogitDistillation, FloatLogitsAgreeWithDouble) {
  const at::Tensor student = random_logits({3, 5, 50}, 5);
  const at::Tensor teacher = random_logits({3, 5, 50}, 6);
  const double exact = logit_distillation_loss(student, teacher, 2.0).item<double>();
  const at::Tensor single =
      logit_distillation_loss(student.to(at::kFloat), teacher.to(at::kHalf), 2.0);
  EXPECT_EQ(single.scalar_type(), at::kFloat);
  EXPECT_NEAR(single.item<double>(), exact, 1e-2 * exact);  // half-precision teacher
}

TEST(TopKDistillation, EqualsTheStoredTokensPlusTailFormula) {
  const int64_t vocab = 13;
  const int64_t k = 4;
  const at::Tensor student = random_logits({2, 3, vocab}, 7);
  const at::Tensor teacher = random_logits({2, 3, vocab}, 8);
  const auto [top_values, top_ids] = at::log_softmax(teacher, -1).topk(k, -1);
  const at::Tensor keep = at::tensor({1, 0, 1, 1, 1, 0}, at::kLong).view({2, 3});
  const double T = 2.0;
  double expected = 0;
  int scored = 0;
  for (int64_t b = 0; b < 2; ++b) {
    for (int64_t i = 0; i < 3; ++i) {
      if (keep[b][i].item<int64_t>() == 0) continue;
      // The k stored tokens and the tail (the rest of the vocabulary) as one category.
      const at::Tensor stored = top_values[b][i];
      const at::Tensor tail = (1 - stored.exp().sum()).log().view({1});  // k < vocab: real mass
      const at::Tensor log_p = at::log_softmax(at::cat({stored, tail}) / T, -1);
      const at::Tensor q_top = at::log_softmax(student[b][i], -1).index_select(0, top_ids[b][i]);
      const at::Tensor log_q =
          at::log_softmax(at::cat({q_top, (1 - q_top.exp().sum()).log().view({1})}) / T, -1);
      expected += (log_p.exp() * (log_p - log_q)).sum().item<double>() * T * T;
      ++scored;
    }
  }
  expected /= scored;
  const at::Tensor got =
      top_k_distillation_loss(student, top_ids.to(at::kInt), top_values, T, keep);
  EXPECT_NEAR(got.item<double>(), expected, 1e-12);

  // With every token stored, the offline loss is the in-memory one.
  const auto [all_values, all_ids] = at::log_softmax(teacher, -1).topk(vocab, -1);
  EXPECT_NEAR(top_k_distillation_loss(student, all_ids, all_values, T, keep).item<double>(),
              logit_distillation_loss(student, teacher, T, keep).item<double>(), 1e-12);
}

TEST(TopKDistillation, LabelsStoredAtTheTemperatureGiveTheExactTemperedTail) {
  const int64_t vocab = 13;
  const int64_t k = 4;
  const double T = 2.0;
  const at::Tensor student = random_logits({2, 3, vocab}, 17);
  const at::Tensor teacher = random_logits({2, 3, vocab}, 18);
  // compress label --logits-temperature 2 stores the top-k of the tempered distribution.
  const auto [top_values, top_ids] = at::log_softmax(teacher / T, -1).topk(k, -1);
  const at::Tensor keep = at::tensor({1, 1, 0, 1, 0, 1}, at::kLong).view({2, 3});
  double expected = 0;
  int scored = 0;
  for (int64_t b = 0; b < 2; ++b) {
    for (int64_t i = 0; i < 3; ++i) {
      if (keep[b][i].item<int64_t>() == 0) continue;
      // Both tempered distributions summed over the tokens the teacher did not store.
      const at::Tensor p_all = at::softmax(teacher[b][i] / T, -1);
      const at::Tensor q_all = at::softmax(student[b][i] / T, -1);
      const at::Tensor stored = top_ids[b][i];
      const at::Tensor p = at::cat({p_all.index_select(0, stored),
                                    (p_all.sum() - p_all.index_select(0, stored).sum()).view({1})});
      const at::Tensor q = at::cat({q_all.index_select(0, stored),
                                    (q_all.sum() - q_all.index_select(0, stored).sum()).view({1})});
      expected += (p * (p.log() - q.log())).sum().item<double>() * T * T;
      ++scored;
    }
  }
  expected /= scored;
  EXPECT_NEAR(top_k_distillation_loss(student, top_ids, top_values, T, keep, T).item<double>(),
              expected, 1e-12);
  // Re-tempering labels stored at 1 gives another number: the tail's tempered mass differs.
  const auto [plain_values, plain_ids] = at::log_softmax(teacher, -1).topk(k, -1);
  EXPECT_GT(
      std::abs(top_k_distillation_loss(student, plain_ids, plain_values, T, keep).item<double>() -
               expected),
      1e-3);
  // With every token stored, it is the in-memory loss.
  const auto [all_values, all_ids] = at::log_softmax(teacher / T, -1).topk(vocab, -1);
  EXPECT_NEAR(top_k_distillation_loss(student, all_ids, all_values, T, keep, T).item<double>(),
              logit_distillation_loss(student, teacher, T, keep).item<double>(), 1e-12);
  // Labels stored at another temperature than 1 or the distillation's are refused.
  try {
    top_k_distillation_loss(student, top_ids, top_values, 3.0, keep, T);
    FAIL() << "expected a ValueError";
  } catch (const ValueError& e) {
    EXPECT_NE(std::string(e.what()).find("stored at temperature 2"), std::string::npos) << e.what();
  }
}

TEST(TopKDistillation, GradientFlowsToTheStudentOnly) {
  at::Tensor student = random_logits({5, 7}, 9).requires_grad_(true);
  const at::Tensor teacher = random_logits({5, 7}, 10);
  const auto [values, ids] = at::log_softmax(teacher, -1).topk(7, -1);
  top_k_distillation_loss(student, ids, values, 1.5).backward();
  const at::Tensor q = at::softmax(student.detach() / 1.5, -1);
  const at::Tensor p = at::softmax(teacher / 1.5, -1);
  EXPECT_LT((student.grad() - 1.5 * (q - p) / 5.0).abs().max().item<double>(), 1e-12);
}

TEST(DistillationLosses, RefuseWhatCannotBeCompared) {
  const at::Tensor a = random_logits({2, 5}, 11);
  EXPECT_THROW(logit_distillation_loss(a, random_logits({2, 6}, 12), 2.0), ValueError);
  EXPECT_THROW(logit_distillation_loss(a, random_logits({3, 5}, 12), 2.0), ValueError);
  EXPECT_THROW(logit_distillation_loss(a, a, 0.0), ValueError);
  EXPECT_THROW(logit_distillation_loss(a, a, 2.0, at::zeros({2}, at::kLong)), ValueError);
  EXPECT_THROW(logit_distillation_loss(a, a, 2.0, at::ones({5}, at::kLong)), ValueError);
  try {
    top_k_distillation_loss(a, at::full({2, 2}, 9, at::kLong), at::zeros({2, 2}), 2.0);
    FAIL() << "expected a ValueError";
  } catch (const ValueError& e) {
    EXPECT_NE(std::string(e.what()).find("another vocabulary"), std::string::npos) << e.what();
  }
  EXPECT_THROW(top_k_distillation_loss(a, at::zeros({2, 2}), at::zeros({2, 2}), 2.0), ValueError);
  EXPECT_THROW(top_k_distillation_loss(a, at::zeros({3, 2}, at::kLong), at::zeros({3, 2}), 2.0),
               ValueError);
  EXPECT_THROW(hidden_state_loss(a, random_logits({2, 6}, 13), HiddenComparison::Mse), ValueError);
  EXPECT_THROW(parse_hidden_comparison("kl", "recipe.yaml: stage.modifiers.X.comparison"),
               ValueError);
}

TEST(HiddenStateLoss, EachComparisonEqualsItsFormula) {
  const at::Tensor s = random_logits({2, 3, 6}, 14, 1.0);
  const at::Tensor t = random_logits({2, 3, 6}, 15, 1.0);
  const at::Tensor keep = at::tensor({1, 1, 0, 0, 1, 1}, at::kLong).view({2, 3});
  const at::Tensor rows = keep.view({-1}).nonzero().squeeze(1);
  const at::Tensor S = s.view({6, 6}).index_select(0, rows);
  const at::Tensor T = t.view({6, 6}).index_select(0, rows);
  const double mse = (S - T).pow(2).mean().item<double>();
  EXPECT_NEAR(hidden_state_loss(s, t, HiddenComparison::Mse, keep).item<double>(), mse, 1e-12);
  EXPECT_NEAR(hidden_state_loss(s, t, HiddenComparison::NormalizedMse, keep).item<double>(),
              mse / (T.pow(2).mean().item<double>() + 1e-6), 1e-12);
  const at::Tensor cos = (S * T).sum(1) / (S.norm(2, 1) * T.norm(2, 1));
  EXPECT_NEAR(hidden_state_loss(s, t, HiddenComparison::Cosine, keep).item<double>(),
              (1 - cos).mean().item<double>(), 1e-12);
  EXPECT_NEAR(hidden_state_loss(s, t, HiddenComparison::SquareHead, keep).item<double>(),
              ((T - S).pow(2).sum() / (T.pow(2).sum() + 1e-6)).item<double>(), 1e-12);
  EXPECT_EQ(parse_hidden_comparison("cosine", "x"), HiddenComparison::Cosine);
  EXPECT_THROW(parse_hidden_comparison("cosine_similarity", "x"), ValueError);
  EXPECT_STREQ(to_string(parse_hidden_comparison("square_head", "x")), "square_head");
}

TEST(HiddenStateLoss, MseGradientIsTwiceTheDifferenceOverTheCount) {
  at::Tensor s = random_logits({3, 4}, 16, 1.0).requires_grad_(true);
  const at::Tensor t = random_logits({3, 4}, 17, 1.0);
  hidden_state_loss(s, t, HiddenComparison::Mse).backward();
  EXPECT_LT((s.grad() - 2 * (s.detach() - t) / 12.0).abs().max().item<double>(), 1e-12);
}

}  // namespace
}  // namespace stunt::distill
