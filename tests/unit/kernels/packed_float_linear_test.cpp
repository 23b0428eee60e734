#include "stunt/kernels/packed_float_linear.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <c10/core/GradMode.h>
#include <gtest/gtest.h>

#include "float_linear_check.h"
#include "stunt/core/error.h"

namespace stunt::kernels {
namespace {

TEST(PackedFloatLinear, TheWheelsLibTorchExportsMklsPackedGemm) {
  // If this fails, --kernels fast silently left float32 layers on at::linear and lost the
  // decode speed the labeler's benchmark reports.
  EXPECT_TRUE(packed_float_linear_available());
}

TEST(PackedFloatLinear, MatchesFloat64AndAtenLinear) {
  at::manual_seed(51);
  // A decode step's rows, a prefill's, a tied head's width, odd sizes with a bias, and one row;
  // also against MKL's own sgemm, which at::linear calls.
  test::expect_float_linear_close(
      {{{16, 576}, 1536, false},
       {{64, 1536}, 576, false},
       {{2, 300, 576}, 192, false},
       {{3, 700}, 4099, false},
       {{3, 5, 7, 13}, 11, true},
       {{1, 1}, 1, true}},
      [](const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias) {
        return packed_float_linear(x, pack_float_weight(weight), bias);
      },
      /*also_aten=*/true);
}

TEST(PackedFloatLinear, NonContiguousInputAndEitherThreadCount) {
  at::manual_seed(52);
  const at::Tensor weight = at::randn({40, 96});
  const PackedFloatWeight packed = pack_float_weight(weight);
  const at::Tensor x = at::randn({96, 300}).t();  // [300, 96], not contiguous
  const at::Tensor all = packed_float_linear(x, packed, at::Tensor());
  EXPECT_TRUE(at::allclose(all, at::linear(x, weight), 1e-5, 1e-5));
  const int threads = at::get_num_threads();
  at::set_num_threads(1);
  const at::Tensor one_thread = packed_float_linear(x, packed, at::Tensor());
  at::set_num_threads(threads);
  EXPECT_TRUE(at::allclose(one_thread, all, 1e-6, 1e-5));
}

TEST(PackedFloatLinear, RefusesWhatItCannotCompute) {
  const PackedFloatWeight packed = pack_float_weight(at::randn({8, 16}));
  EXPECT_FALSE(packed_float_linear_supported(at::randn({2, 16}).to(at::kDouble), packed, {}));
  EXPECT_FALSE(packed_float_linear_supported(at::randn({2, 15}), packed, {}));
  EXPECT_FALSE(packed_float_linear_supported(at::randn({2, 16}), packed, at::randn({7})));
  const at::Tensor grad_input = at::randn({2, 16}).requires_grad_(true);
  EXPECT_FALSE(packed_float_linear_supported(grad_input, packed, {}));
  {
    c10::NoGradGuard no_grad;
    EXPECT_TRUE(packed_float_linear_supported(grad_input, packed, {}));
  }
  EXPECT_THROW(packed_float_linear(at::randn({2, 15}), packed, {}), Error);
  EXPECT_THROW(pack_float_weight(at::randn({8, 16}).to(at::kDouble)), Error);
}

}  // namespace
}  // namespace stunt::kernels
