#include "stunt/kernels/int8_linear.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <c10/util/Exception.h>

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <mutex>
#include <optional>

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#endif

#include "cpu_features.h"
#include "int8_gemv.h"
#include "stunt/core/error.h"

namespace stunt::kernels {

struct Int8OnednnWeights {
  std::once_flag made;
  at::Tensor packed;
};

namespace {

/// Up to this many rows, Stunt's VNNI kernel beats oneDNN's (whose setup dominates small
/// products); benchmarks/quantized_linear_bench.cpp measures both.
constexpr int64_t kGemvRows = 2;

// The signatures the operators were registered with (by value, as their kernels take them).
using Prepack = at::Tensor(at::Tensor, std::optional<c10::List<int64_t>>);
using QLinear = at::Tensor(at::Tensor, double, int64_t, at::Tensor, at::Tensor, at::Tensor,
                           std::optional<at::Tensor>, double, int64_t,
                           std::optional<c10::ScalarType>, c10::string_view,
                           c10::List<std::optional<c10::Scalar>>, c10::string_view);

struct Operators {
  std::optional<c10::TypedOperatorHandle<Prepack>> prepack;
  std::optional<c10::TypedOperatorHandle<QLinear>> qlinear;
  std::string missing;
};

bool cpu_has_avx512_vnni() {
#if defined(__x86_64__) && defined(__GNUC__)
  static const bool has = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vnni");
  return has;
#else
  return false;
#endif
}

bool cpu_has_avx_vnni() {
#if defined(__x86_64__) && defined(__GNUC__)
  static const bool has = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("avxvnni");
  return has;
#else
  return false;
#endif
}

bool cpu_has_vnni() { return cpu_has_avx512_vnni() || cpu_has_avx_vnni(); }

/// The small-batch kernel for this CPU, or nullptr.
detail::Int8GemvFn gemv_kernel() {
  if (cpu_has_avx512_vnni()) return detail::int8_gemv_avx512vnni;
  if (cpu_has_avx_vnni()) return detail::int8_gemv_avxvnni;
  return nullptr;
}

const Operators& operators() {
  static const Operators found = [] {
    Operators ops;
    if (!at::hasMKLDNN()) {
      ops.missing = "this LibTorch was built without oneDNN";
      return ops;
    }
    auto& dispatcher = c10::Dispatcher::singleton();
    const auto prepack = dispatcher.findOp({"onednn::qlinear_prepack", ""});
    const auto qlinear = dispatcher.findOp({"onednn::qlinear_pointwise", ""});
    if (!prepack || !qlinear) {
      ops.missing = "this LibTorch has no onednn::qlinear_prepack / onednn::qlinear_pointwise";
      return ops;
    }
    try {
      ops.prepack = prepack->typed<Prepack>();
      ops.qlinear = qlinear->typed<QLinear>();
    } catch (const c10::Error&) {
      ops.prepack.reset();
      ops.qlinear.reset();
      ops.missing = "this LibTorch's onednn::qlinear_pointwise has another signature";
    }
    return ops;
  }();
  return found;
}

// Each form computes q = round_half_even(clamp(x / scale, −128, 127)) + 128, as
// kernels::quantize does (a true division, not a product by the reciprocal), and the row's
// largest magnitude.

float largest_magnitude_scalar(const float* x, int64_t n) {
  float largest = 0.0f;
  for (int64_t k = 0; k < n; ++k) largest = std::max(largest, std::fabs(x[k]));
  return largest;
}

void quantize_row_scalar(const float* x, int64_t n, float scale, uint8_t* q) {
  for (int64_t k = 0; k < n; ++k) {
    const float scaled = std::min(127.0f, std::max(-128.0f, x[k] / scale));
    q[k] = static_cast<uint8_t>(static_cast<int>(std::nearbyint(scaled)) + 128);
  }
}

#if defined(__x86_64__) && defined(__GNUC__)

__attribute__((target("avx2"))) float largest_magnitude_avx2(const float* x, int64_t n) {
  const __m256 sign = _mm256_set1_ps(-0.0f);
  __m256 largest = _mm256_setzero_ps();
  int64_t k = 0;
  for (; k + 8 <= n; k += 8) {
    largest = _mm256_max_ps(largest, _mm256_andnot_ps(sign, _mm256_loadu_ps(x + k)));
  }
  alignas(32) float lanes[8];
  _mm256_store_ps(lanes, largest);
  float out = largest_magnitude_scalar(x + k, n - k);
  for (float lane : lanes) out = std::max(out, lane);
  return out;
}

__attribute__((target("avx2"))) void quantize_row_avx2(const float* x, int64_t n, float scale,
                                                       uint8_t* q) {
  const __m256 divisor = _mm256_set1_ps(scale);
  const __m256 low = _mm256_set1_ps(-128.0f);
  const __m256 high = _mm256_set1_ps(127.0f);
  const __m256i offset = _mm256_set1_epi32(128);
  int64_t k = 0;
  for (; k + 8 <= n; k += 8) {
    const __m256 scaled =
        _mm256_min_ps(high, _mm256_max_ps(low, _mm256_div_ps(_mm256_loadu_ps(x + k), divisor)));
    // cvtps rounds half to even in the default rounding mode.
    const __m256i values = _mm256_add_epi32(_mm256_cvtps_epi32(scaled), offset);
    // 8 int32 in [0, 255] → 8 bytes.
    const __m128i words =
        _mm_packus_epi32(_mm256_castsi256_si128(values), _mm256_extracti128_si256(values, 1));
    _mm_storel_epi64(reinterpret_cast<__m128i*>(q + k), _mm_packus_epi16(words, words));
  }
  quantize_row_scalar(x + k, n - k, scale, q + k);
}

__attribute__((target("avx512f"))) float largest_magnitude_avx512(const float* x, int64_t n) {
  __m512 largest = _mm512_setzero_ps();
  int64_t k = 0;
  for (; k + 16 <= n; k += 16)
    largest = _mm512_max_ps(largest, _mm512_abs_ps(_mm512_loadu_ps(x + k)));
  return std::max(_mm512_reduce_max_ps(largest), largest_magnitude_scalar(x + k, n - k));
}

__attribute__((target("avx512f"))) void quantize_row_avx512(const float* x, int64_t n, float scale,
                                                            uint8_t* q) {
  const __m512 divisor = _mm512_set1_ps(scale);
  const __m512 low = _mm512_set1_ps(-128.0f);
  const __m512 high = _mm512_set1_ps(127.0f);
  const __m512i offset = _mm512_set1_epi32(128);
  int64_t k = 0;
  for (; k + 16 <= n; k += 16) {
    const __m512 scaled =
        _mm512_min_ps(high, _mm512_max_ps(low, _mm512_div_ps(_mm512_loadu_ps(x + k), divisor)));
    const __m512i values = _mm512_add_epi32(_mm512_cvtps_epi32(scaled), offset);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(q + k), _mm512_cvtepi32_epi8(values));
  }
  quantize_row_scalar(x + k, n - k, scale, q + k);
}

#endif

float largest_magnitude(const float* x, int64_t n) {
#if defined(__x86_64__) && defined(__GNUC__)
  if (detail::cpu_has_avx512f()) return largest_magnitude_avx512(x, n);
  if (detail::cpu_has_avx2()) return largest_magnitude_avx2(x, n);
#endif
  return largest_magnitude_scalar(x, n);
}

void quantize_row(const float* x, int64_t n, float scale, uint8_t* q) {
#if defined(__x86_64__) && defined(__GNUC__)
  if (detail::cpu_has_avx512f()) return quantize_row_avx512(x, n, scale, q);
  if (detail::cpu_has_avx2()) return quantize_row_avx2(x, n, scale, q);
#endif
  quantize_row_scalar(x, n, scale, q);
}

Int8Rows quantize_rows(const at::Tensor& input, const float* fixed_scale) {
  STUNT_CHECK(input.device().is_cpu() && input.scalar_type() == at::kFloat && input.dim() >= 1,
              "int8 activation quantization takes float32 CPU input, got ", input.toString());
  const at::Tensor x = input.reshape({-1, input.size(-1)}).contiguous();
  const int64_t rows = x.size(0);
  const int64_t in = x.size(1);
  Int8Rows out;
  out.values = at::empty({rows, in}, x.options().dtype(at::kByte));
  out.scales = at::empty({rows}, x.options());
  const float* src = x.data_ptr<float>();
  uint8_t* dst = out.values.data_ptr<uint8_t>();
  float* scales = out.scales.data_ptr<float>();
  at::parallel_for(0, rows, 16, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      const float* row = src + r * in;
      float scale = 0.0f;
      if (fixed_scale != nullptr) {
        scale = *fixed_scale;
      } else {
        const float largest = largest_magnitude(row, in);
        // compute_qparams: max(|min|, |max|) / (255 / 2), a zero scale replaced by the
        // dtype's machine epsilon.
        scale = largest / 127.5f;
        if (scale == 0.0f) scale = FLT_EPSILON;
      }
      scales[r] = scale;
      quantize_row(row, in, scale, dst + r * in);
    }
  });
  return out;
}

void check_rows(const Int8Rows& x, const Int8PackedWeight& weight) {
  STUNT_CHECK(x.values.dim() == 2 && x.values.size(1) == weight.in_features,
              "int8_linear: activations ", x.values.sizes(), " do not match in_features ",
              weight.in_features);
}

/// Whether Stunt's VNNI kernel serves `rows` rows of these weights (otherwise oneDNN does).
bool small_batch_kernel_takes(int64_t rows, const Int8PackedWeight& weight) {
  return rows <= kGemvRows && weight.blocked.defined() && gemv_kernel() != nullptr;
}

}  // namespace

bool int8_linear_available(std::string* why) {
  auto refuse = [&](const std::string& reason) {
    if (why != nullptr) *why = reason;
    return false;
  };
  if (!operators().qlinear) return refuse(operators().missing);
  if (!cpu_has_vnni()) {
    return refuse(
        "this CPU has no VNNI (AVX512_VNNI or AVX_VNNI); oneDNN's int8 products without it can "
        "saturate");
  }
  return true;
}

Int8PackedWeight pack_int8_weight(const at::Tensor& q, const at::Tensor& scale) {
  std::string why;
  STUNT_CHECK(int8_linear_available(&why), "int8 weights cannot be packed: ", why);
  STUNT_CHECK_AS(ValueError, q.dim() == 2, "int8 weights must be [out, in], got ", q.sizes());
  const int64_t out = q.size(0);
  const at::Tensor values = q.to(at::kFloat);
  STUNT_CHECK_AS(ValueError,
                 values.numel() == 0 ||
                     ((values >= -128).all().item<bool>() && (values <= 127).all().item<bool>() &&
                      at::equal(values, values.round())),
                 "int8 weights must be integers in [-128, 127]");
  STUNT_CHECK_AS(ValueError, scale.numel() == 1 || scale.numel() == out,
                 "int8 weight scales must be one per output channel (", out, ") or one, got ",
                 scale.sizes());
  const int64_t in = q.size(1);
  Int8PackedWeight packed;
  packed.out_features = out;
  packed.in_features = in;
  packed.scales = scale.to(at::kFloat).reshape({-1}).expand({out}).contiguous();
  packed.zero_points = at::zeros({out}, at::kLong);
  packed.offsets = (values.sum(1) * 128).to(at::kInt).contiguous();
  packed.onednn = std::make_shared<Int8OnednnWeights>();
  const at::Tensor int8_values = values.to(at::kChar).contiguous();
  if (out % 16 == 0 && in % 4 == 0) {
    packed.blocked = int8_values.view({out / 16, 16, in / 4, 4}).permute({0, 2, 1, 3}).contiguous();
  } else {
    std::call_once(packed.onednn->made, [&] {
      packed.onednn->packed = operators().prepack->call(int8_values, std::nullopt);
    });
  }
  return packed;
}

Int8Rows quantize_rows_dynamic(const at::Tensor& x) { return quantize_rows(x, nullptr); }

Int8Rows quantize_rows_static(const at::Tensor& x, float scale) {
  STUNT_CHECK_AS(ValueError, scale > 0.0f && std::isfinite(scale),
                 "a static int8 activation scale must be positive and finite, got ", scale);
  return quantize_rows(x, &scale);
}

int64_t Int8PackedWeight::bytes() const {
  int64_t total = (blocked.defined() ? blocked.numel() : 0) + out_features * 8;
  if (onednn && onednn->packed.defined()) total += out_features * in_features;
  return total;
}

const at::Tensor& Int8PackedWeight::onednn_packed() const {
  std::call_once(onednn->made, [&] {
    // The blocked layout back to [out, in].
    const at::Tensor values =
        blocked.permute({0, 2, 1, 3}).reshape({out_features, in_features}).contiguous();
    onednn->packed = operators().prepack->call(values, std::nullopt);
  });
  return onednn->packed;
}

Int8PackedWeight Int8PackedWeight::clone() const {
  Int8PackedWeight copy = *this;
  copy.onednn = std::make_shared<Int8OnednnWeights>();
  if (blocked.defined()) {
    copy.blocked = blocked.clone();
  } else {
    std::call_once(copy.onednn->made, [&] { copy.onednn->packed = onednn->packed.clone(); });
  }
  return copy;
}

at::Tensor int8_linear_onednn(const Int8Rows& x, const Int8PackedWeight& weight,
                              const at::Tensor& bias) {
  check_rows(x, weight);
  // Scale 1 and zero point 128 for the activations: oneDNN returns Σ (q + 128 − 128)·w·s_w;
  // the per-row scale multiplies afterwards.
  at::Tensor y = operators().qlinear->call(
      x.values, 1.0, 128, weight.onednn_packed(), weight.scales, weight.zero_points, std::nullopt,
      1.0, 0, at::kFloat, "none", c10::List<std::optional<c10::Scalar>>(), "");
  y.mul_(x.scales.unsqueeze(1));
  if (bias.defined()) y.add_(bias);
  return y;
}

at::Tensor int8_linear(const Int8Rows& x, const Int8PackedWeight& weight, const at::Tensor& bias) {
  check_rows(x, weight);
  const int64_t rows = x.values.size(0);
  if (!small_batch_kernel_takes(rows, weight)) return int8_linear_onednn(x, weight, bias);
  const detail::Int8GemvFn gemv = gemv_kernel();
  const at::Tensor bias_float = bias.defined() ? bias.to(at::kFloat).contiguous() : at::Tensor();
  at::Tensor y = at::empty({rows, weight.out_features}, x.scales.options());
  detail::Int8GemvProblem p;
  p.x = x.values.data_ptr<uint8_t>();
  p.x_scales = x.scales.data_ptr<float>();
  p.rows = rows;
  p.in = weight.in_features;
  p.weights = weight.blocked.data_ptr<int8_t>();
  p.offsets = weight.offsets.data_ptr<int32_t>();
  p.w_scales = weight.scales.data_ptr<float>();
  p.bias = bias_float.defined() ? bias_float.data_ptr<float>() : nullptr;
  p.y = y.data_ptr<float>();
  p.out = weight.out_features;
  at::parallel_for(0, weight.out_features / 16, 4,
                   [&](int64_t begin, int64_t end) { gemv(p, begin, end); });
  return y;
}

std::string int8_linear_path(int64_t rows, const Int8PackedWeight& weight) {
  if (!small_batch_kernel_takes(rows, weight)) return "int8-onednn";
  return cpu_has_avx512_vnni() ? "int8-vnni-avx512" : "int8-vnni-avx2";
}

}  // namespace stunt::kernels
