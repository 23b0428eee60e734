#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "cpu/row_update.h"
#include "stunt/kernels/row_selection.h"

namespace stunt::kernels {
namespace {

template <typename T>
void expect_vector_update_matches_scalar(c10::ScalarType dtype) {
  at::manual_seed(3);
  for (int64_t n : {0, 1, 3, 7, 8, 9, 31, 130}) {
    const at::Tensor h = at::randn({n + 1}, dtype);
    at::Tensor vector = at::randn({n + 1}, dtype);
    at::Tensor scalar = vector.clone();
    const T err = static_cast<T>(0.37);
    // One element in, so that the vector loop also starts unaligned.
    detail::subtract_scaled(vector.data_ptr<T>() + 1, h.data_ptr<T>() + 1, err, n);
    detail::subtract_scaled_scalar(scalar.data_ptr<T>() + 1, h.data_ptr<T>() + 1, err, n);
    EXPECT_TRUE(vector.equal(scalar)) << "n = " << n;
    if (n > 0) {
      EXPECT_FALSE(vector.narrow(0, 1, n).equal(h.narrow(0, 1, n)));
    }
  }
}

TEST(RowUpdate, VectorLoopRoundsLikeTheScalarOne) {
  expect_vector_update_matches_scalar<float>(at::kFloat);
  expect_vector_update_matches_scalar<double>(at::kDouble);
}

TEST(RowSelection, ChoosesAsAStableSortDoes) {
  at::manual_seed(5);
  // Few distinct values: most choices are among ties, which go to the lower column.
  const at::Tensor scores = at::randint(0, 5, {37, 64}, at::kFloat);
  for (int64_t k : {0, 1, 17, 32, 63, 64}) {
    const at::Tensor order = std::get<1>(scores.sort(std::optional<bool>(true), 1));
    at::Tensor expected = at::zeros(scores.sizes(), at::kBool);
    expected.scatter_(1, order.narrow(1, 0, k), true);
    const at::Tensor chosen = lowest_per_row(scores, k);
    EXPECT_TRUE(chosen.equal(expected)) << "k = " << k;
    EXPECT_TRUE(chosen.sum(1).eq(k).all().item<bool>()) << "k = " << k;
  }
  const at::Tensor distinct = at::randn({9, 100});
  const at::Tensor order = std::get<1>(distinct.sort(std::optional<bool>(true), 1));
  at::Tensor expected = at::zeros(distinct.sizes(), at::kBool);
  expected.scatter_(1, order.narrow(1, 0, 50), true);
  EXPECT_TRUE(lowest_per_row(distinct, 50).equal(expected));
  // Signed zeros tie (as they compare equal), negatives order below them, and values one ulp
  // apart differ only in the lowest byte.
  const at::Tensor palette =
      at::tensor({-1.5f, -0.0f, 0.0f, 1e-30f, 1.0f, 1.0f + 0x1p-23f, 1.0f + 0x1p-22f, -1e-30f});
  const at::Tensor mixed = palette.index({at::randint(0, 8, {23, 301})});
  const at::Tensor mixed_order = std::get<1>(mixed.sort(std::optional<bool>(true), 1));
  for (int64_t k : {1, 100, 150, 300}) {
    at::Tensor want = at::zeros(mixed.sizes(), at::kBool);
    want.scatter_(1, mixed_order.narrow(1, 0, k), true);
    EXPECT_TRUE(lowest_per_row(mixed, k).equal(want)) << "k = " << k;
  }
  EXPECT_ANY_THROW(lowest_per_row(distinct, 101));
  EXPECT_ANY_THROW(lowest_per_row(distinct.to(at::kDouble), 3));
}

}  // namespace
}  // namespace stunt::kernels
