#include "stunt/kernels/gptq_block.h"

#include <ATen/Parallel.h>
#include <c10/util/Float8_e4m3fn.h>

#include <algorithm>
#include <cmath>

#include "row_update.h"
#include "stunt/core/error.h"

namespace stunt::kernels {
namespace {

template <typename T>
void quantize_block(at::Tensor& weights, const at::Tensor& hinv, const at::Tensor& scales,
                    const at::Tensor& zero_points, const at::Tensor& pruned,
                    const QuantRange& range, at::Tensor& quantized, at::Tensor& errors,
                    at::Tensor& losses) {
  const int64_t rows = weights.size(0);
  const int64_t count = weights.size(1);
  T* w = weights.data_ptr<T>();
  const T* h = hinv.data_ptr<T>();
  const T* s = scales.data_ptr<T>();
  const T* z = zero_points.defined() ? zero_points.data_ptr<T>() : nullptr;
  const bool* p = pruned.defined() ? pruned.data_ptr<bool>() : nullptr;
  T* q = quantized.data_ptr<T>();
  T* e = errors.data_ptr<T>();
  T* loss = losses.data_ptr<T>();
  const T lo = static_cast<T>(range.min);
  const T hi = static_cast<T>(range.max);
  const bool fp8 = range.is_float;
  at::parallel_for(0, rows, 8, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      T* wr = w + r * count;
      const T* sr = s + r * count;
      const T* zr = z != nullptr ? z + r * count : nullptr;
      const bool* pr = p != nullptr ? p + r * count : nullptr;
      T* qr = q + r * count;
      T* er = e + r * count;
      T row_loss = loss[r];
      for (int64_t i = 0; i < count; ++i) {
        const T x = wr[i];
        // The operations, and their order, of quantize() and dequantize().
        T v = x / sr[i];
        if (zr != nullptr) v = v + zr[i];
        v = std::min(std::max(v, lo), hi);
        v = fp8 ? static_cast<T>(static_cast<float>(c10::Float8_e4m3fn(static_cast<float>(v))))
                : std::nearbyint(v);
        const T dequantized =
            pr != nullptr && pr[i] ? T(0) : (zr != nullptr ? v - zr[i] : v) * sr[i];
        qr[i] = dequantized;
        const T err = (x - dequantized) / h[i * count + i];
        row_loss += err * err / T(2);
        er[i] = err;
        detail::subtract_scaled(wr + i + 1, h + i * count + i + 1, err, count - i - 1);
      }
      loss[r] = row_loss;
    }
  });
}

}  // namespace

void gptq_quantize_block(at::Tensor& weights, const at::Tensor& hinv, const at::Tensor& scales,
                         const at::Tensor& zero_points, const at::Tensor& pruned,
                         const QuantRange& range, at::Tensor& quantized, at::Tensor& errors,
                         at::Tensor& losses) {
  const int64_t rows = weights.size(0);
  const int64_t count = weights.size(1);
  auto expect = [&](const at::Tensor& t, at::IntArrayRef shape, const char* name) {
    STUNT_CHECK(t.is_contiguous() && t.scalar_type() == weights.scalar_type() && t.sizes() == shape,
                "gptq_quantize_block: ", name, " must be contiguous ", weights.scalar_type(), " ",
                shape, ", got ", t.scalar_type(), " ", t.sizes());
  };
  STUNT_CHECK(weights.dim() == 2, "gptq_quantize_block: weights must be [rows, count]");
  expect(weights, {rows, count}, "weights");
  expect(hinv, {count, count}, "hinv");
  expect(scales, {rows, count}, "scales");
  if (zero_points.defined()) expect(zero_points, {rows, count}, "zero_points");
  STUNT_CHECK(!pruned.defined() || (pruned.is_contiguous() && pruned.scalar_type() == at::kBool &&
                                    pruned.sizes() == at::IntArrayRef{rows, count}),
              "gptq_quantize_block: pruned must be contiguous bool [", rows, ", ", count, "]");
  expect(quantized, {rows, count}, "quantized");
  expect(errors, {rows, count}, "errors");
  expect(losses, {rows}, "losses");
  if (weights.scalar_type() == at::kDouble) {
    quantize_block<double>(weights, hinv, scales, zero_points, pruned, range, quantized, errors,
                           losses);
  } else {
    STUNT_CHECK(weights.scalar_type() == at::kFloat,
                "gptq_quantize_block: float32 or float64 weights, got ", weights.scalar_type());
    quantize_block<float>(weights, hinv, scales, zero_points, pruned, range, quantized, errors,
                          losses);
  }
}

}  // namespace stunt::kernels
