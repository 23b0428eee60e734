#include "stunt/kernels/column_square_sums.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <gtest/gtest.h>

namespace stunt::kernels {
namespace {

TEST(ColumnSquareSums, MatchesFloat64Sums) {
  at::manual_seed(21);
  for (const auto& [rows, columns] :
       {std::pair<int64_t, int64_t>{1, 1}, {63, 5}, {65, 130}, {4096, 576}, {300, 1537}}) {
    const at::Tensor x = at::randn({rows, columns}) * 4;
    const at::Tensor want = x.to(at::kDouble).square().sum(0);
    const at::Tensor got = column_square_sums(x);
    ASSERT_EQ(got.scalar_type(), at::kFloat);
    const double error = ((got.to(at::kDouble) - want).abs() / want).max().item<double>();
    EXPECT_LT(error, 1e-6) << rows << " x " << columns;
  }
}

TEST(ColumnSquareSums, KeepsPrecisionOverManyTokens) {
  // 2^19 rows of 0.1: a float32 running sum drifts by about a percent; float64 does not.
  const int64_t rows = int64_t{1} << 19;
  const at::Tensor x = at::full({rows, 8}, 0.1f);
  const double want = static_cast<double>(rows) * 0.1f * 0.1f;
  const double got = column_square_sums(x)[3].item<double>();
  EXPECT_NEAR(got / want, 1.0, 1e-6);
}

TEST(ColumnSquareSums, TakesStridedColumnsAndAnyThreadCount) {
  at::manual_seed(22);
  const at::Tensor x = at::randn({200, 96});
  const at::Tensor strided = x.t().contiguous().t();  // columns contiguous, rows strided
  const at::Tensor on_all_threads = column_square_sums(x);
  EXPECT_TRUE(column_square_sums(strided).equal(on_all_threads));
  const int threads = at::get_num_threads();
  at::set_num_threads(1);
  const at::Tensor on_one_thread = column_square_sums(x);
  at::set_num_threads(threads);
  EXPECT_TRUE(on_one_thread.equal(on_all_threads));
  EXPECT_THROW(column_square_sums(x.to(at::kDouble)), std::exception);
}

}  // namespace
}  // namespace stunt::kernels
