#pragma once
/// Mapping between safetensors dtypes and LibTorch scalar types.

#include <ATen/core/Tensor.h>

#include <optional>

#include "stunt/io/safetensors_format.h"

namespace stunt::io {

/// The LibTorch type for a safetensors dtype; nullopt for F6_E2M3 and F6_E3M2 (no 6-bit type in
/// LibTorch). F4 maps to Float4_e2m1fn_x2, whose elements pack two values.
std::optional<c10::ScalarType> to_scalar_type(SafetensorsDtype dtype);
/// The safetensors dtype for a LibTorch type; throws ValueError for types safetensors lacks.
SafetensorsDtype to_safetensors_dtype(c10::ScalarType type);

}  // namespace stunt::io
