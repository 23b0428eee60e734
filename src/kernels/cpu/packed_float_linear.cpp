#include "stunt/kernels/packed_float_linear.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>
#include <dlfcn.h>

#include <limits>

#include "stunt/core/error.h"

namespace stunt::kernels {
namespace {

// MKL's CBLAS enumerations (mkl_cblas.h), which the LibTorch wheel does not ship a header for.
constexpr int kRowMajor = 101;
constexpr int kNoTrans = 111;
constexpr int kTrans = 112;
constexpr int kPacked = 151;
constexpr int kBMatrix = 162;

// LP64 MKL (LibTorch's): MKL_INT is int.
using PackGetSize = size_t (*)(int identifier, int m, int n, int k);
using Pack = void (*)(int layout, int identifier, int trans, int m, int n, int k, float alpha,
                      const float* src, int ld, float* dest);
using Compute = void (*)(int layout, int transa, int transb, int m, int n, int k, const float* a,
                         int lda, const float* b, int ldb, float beta, float* c, int ldc);

struct MklPacked {
  PackGetSize get_size = nullptr;
  Pack pack = nullptr;
  Compute compute = nullptr;
};

const MklPacked& mkl() {
  static const MklPacked functions = [] {
    MklPacked f;
    f.get_size = reinterpret_cast<PackGetSize>(dlsym(RTLD_DEFAULT, "cblas_sgemm_pack_get_size"));
    f.pack = reinterpret_cast<Pack>(dlsym(RTLD_DEFAULT, "cblas_sgemm_pack"));
    f.compute = reinterpret_cast<Compute>(dlsym(RTLD_DEFAULT, "cblas_sgemm_compute"));
    if (f.get_size == nullptr || f.pack == nullptr || f.compute == nullptr) return MklPacked{};
    return f;
  }();
  return functions;
}

// MKL's packing is tuned for a row count; a decode step's few dozen rows are the calls it
// serves most often (the size of the packed data does not depend on it).
constexpr int kPackedForRows = 64;

bool fits_int(int64_t v) { return v > 0 && v <= std::numeric_limits<int>::max(); }

}  // namespace

bool packed_float_linear_available() { return mkl().compute != nullptr; }

PackedFloatWeight pack_float_weight(const at::Tensor& weight) {
  STUNT_CHECK(packed_float_linear_available(),
              "pack_float_weight: this LibTorch does not export MKL's packed GEMM");
  STUNT_CHECK(weight.dim() == 2 && weight.scalar_type() == at::kFloat && weight.is_cpu() &&
                  fits_int(weight.size(0)) && fits_int(weight.size(1)),
              "pack_float_weight takes a float32 CPU weight [out, in]; got ", weight.sizes(), " ",
              weight.scalar_type());
  const at::Tensor w = weight.contiguous();
  const int n = static_cast<int>(w.size(0));
  const int k = static_cast<int>(w.size(1));
  const size_t bytes = mkl().get_size(kBMatrix, kPackedForRows, n, k);
  PackedFloatWeight out;
  // Most of MKL's buffer is slack it never writes, so it costs address space, not memory.
  out.buffer = at::empty({static_cast<int64_t>((bytes + 3) / 4)}, at::kFloat);
  out.out_features = n;
  out.in_features = k;
  // B = weightᵀ (k × n): the row-major weight read transposed.
  mkl().pack(kRowMajor, kBMatrix, kTrans, kPackedForRows, n, k, 1.0f, w.data_ptr<float>(), k,
             out.buffer.data_ptr<float>());
  return out;
}

bool packed_float_linear_supported(const at::Tensor& input, const PackedFloatWeight& weight,
                                   const at::Tensor& bias) {
  if (!weight.buffer.defined()) return false;
  if (at::GradMode::is_enabled() &&
      (input.requires_grad() || (bias.defined() && bias.requires_grad()))) {
    return false;
  }
  const bool bias_ok = !bias.defined() || (bias.is_cpu() && bias.scalar_type() == at::kFloat &&
                                           bias.dim() == 1 && bias.size(0) == weight.out_features);
  return input.is_cpu() && input.layout() == at::kStrided && input.scalar_type() == at::kFloat &&
         input.dim() >= 1 && input.size(-1) == weight.in_features && bias_ok &&
         input.numel() / weight.in_features <= std::numeric_limits<int>::max();
}

at::Tensor packed_float_linear(const at::Tensor& input, const PackedFloatWeight& weight,
                               const at::Tensor& bias) {
  STUNT_CHECK(packed_float_linear_supported(input, weight, bias),
              "packed_float_linear takes float32 CPU input [..., ", weight.in_features,
              "] (and bias [", weight.out_features, "]) without autograd; got input ",
              input.sizes(), " ", input.scalar_type());
  const at::Tensor x = input.contiguous();
  const int64_t rows = x.numel() / weight.in_features;
  std::vector<int64_t> shape = x.sizes().vec();
  shape.back() = weight.out_features;
  at::Tensor y = at::empty(shape, x.options());
  if (rows == 0) return y;
  const int n = static_cast<int>(weight.out_features);
  const int k = static_cast<int>(weight.in_features);
  mkl().compute(kRowMajor, kNoTrans, kPacked, static_cast<int>(rows), n, k, x.data_ptr<float>(), k,
                weight.buffer.data_ptr<float>(), n, 0.0f, y.data_ptr<float>(), n);
  if (bias.defined()) y.add_(bias);
  return y;
}

}  // namespace stunt::kernels
