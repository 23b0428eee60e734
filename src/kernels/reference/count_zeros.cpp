#include "stunt/kernels/count_zeros.h"

#include <ATen/ATen.h>

namespace stunt::kernels {
namespace {

// Converting a huge low-precision tensor to fp32 at once would multiply its memory by up to
// four; 16M elements (64 MB of fp32) per chunk keeps the peak small.
constexpr int64_t kChunkElements = 16 * 1024 * 1024;

int64_t count_in_chunks(const at::Tensor& flat, at::ScalarType compute) {
  int64_t zeros = 0;
  for (int64_t start = 0; start < flat.numel(); start += kChunkElements) {
    const int64_t length = std::min(kChunkElements, flat.numel() - start);
    at::Tensor chunk = flat.narrow(0, start, length);
    if (chunk.scalar_type() != compute) chunk = chunk.to(compute);
    zeros += chunk.eq(0).sum().item<int64_t>();
  }
  return zeros;
}

}  // namespace

int64_t logical_numel(const at::Tensor& tensor) {
  return tensor.scalar_type() == at::kFloat4_e2m1fn_x2 ? 2 * tensor.numel() : tensor.numel();
}

int64_t count_zeros(const at::Tensor& tensor) {
  if (tensor.numel() == 0) return 0;
  at::Tensor flat = tensor.contiguous().reshape({-1});
  switch (tensor.scalar_type()) {
    case at::kBool:
      return flat.numel() - flat.sum().item<int64_t>();
    case at::kFloat4_e2m1fn_x2: {
      // Two e2m1 values per byte; a value is zero when its exponent and mantissa bits
      // (the low three of its nibble) are zero, whatever its sign.
      at::Tensor bytes = flat.view(at::kByte);
      const int64_t low = bytes.bitwise_and(0x7).eq(0).sum().item<int64_t>();
      const int64_t high = bytes.bitwise_and(0x70).eq(0).sum().item<int64_t>();
      return low + high;
    }
    case at::kUInt16:
      return count_in_chunks(flat.view(at::kShort), at::kShort);
    case at::kUInt32:
      return count_in_chunks(flat.view(at::kInt), at::kInt);
    case at::kUInt64:
      return count_in_chunks(flat.view(at::kLong), at::kLong);
    case at::kComplexFloat:
    case at::kComplexDouble: {
      at::Tensor parts = at::view_as_real(flat);  // [n, 2]
      return parts.eq(0).all(1).sum().item<int64_t>();
    }
    default:
      break;
  }
  if (at::isFloatingType(tensor.scalar_type())) {
    const bool native = tensor.scalar_type() == at::kFloat || tensor.scalar_type() == at::kDouble;
    return count_in_chunks(flat, native ? tensor.scalar_type() : at::kFloat);
  }
  return count_in_chunks(flat, tensor.scalar_type());
}

}  // namespace stunt::kernels
