#include "stunt/io/tensor_dtype.h"

#include "stunt/core/error.h"

namespace stunt::io {

std::optional<c10::ScalarType> to_scalar_type(SafetensorsDtype dtype) {
  using S = c10::ScalarType;
  switch (dtype) {
    case SafetensorsDtype::BOOL:
      return S::Bool;
    case SafetensorsDtype::F4:
      return S::Float4_e2m1fn_x2;
    case SafetensorsDtype::F6_E2M3:
    case SafetensorsDtype::F6_E3M2:
      return std::nullopt;
    case SafetensorsDtype::U8:
      return S::Byte;
    case SafetensorsDtype::I8:
      return S::Char;
    case SafetensorsDtype::F8_E5M2:
      return S::Float8_e5m2;
    case SafetensorsDtype::F8_E4M3:
      return S::Float8_e4m3fn;
    case SafetensorsDtype::F8_E8M0:
      return S::Float8_e8m0fnu;
    case SafetensorsDtype::F8_E4M3FNUZ:
      return S::Float8_e4m3fnuz;
    case SafetensorsDtype::F8_E5M2FNUZ:
      return S::Float8_e5m2fnuz;
    case SafetensorsDtype::I16:
      return S::Short;
    case SafetensorsDtype::U16:
      return S::UInt16;
    case SafetensorsDtype::F16:
      return S::Half;
    case SafetensorsDtype::BF16:
      return S::BFloat16;
    case SafetensorsDtype::I32:
      return S::Int;
    case SafetensorsDtype::U32:
      return S::UInt32;
    case SafetensorsDtype::F32:
      return S::Float;
    case SafetensorsDtype::C64:
      return S::ComplexFloat;
    case SafetensorsDtype::F64:
      return S::Double;
    case SafetensorsDtype::I64:
      return S::Long;
    case SafetensorsDtype::U64:
      return S::UInt64;
  }
  return std::nullopt;
}

SafetensorsDtype to_safetensors_dtype(c10::ScalarType type) {
  for (int i = 0; i <= static_cast<int>(SafetensorsDtype::U64); ++i) {
    const auto dtype = static_cast<SafetensorsDtype>(i);
    if (to_scalar_type(dtype) == type) return dtype;
  }
  throw ValueError(str("LibTorch dtype ", c10::toString(type),
                       " has no safetensors equivalent; convert the tensor first (safetensors "
                       "dtypes: ",
                       all_dtype_names(), ")"));
}

}  // namespace stunt::io
