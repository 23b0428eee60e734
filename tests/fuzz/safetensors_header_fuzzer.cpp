// libFuzzer target: any bytes as a safetensors file. Only stunt::Error may escape the parser.
#include <cstddef>
#include <cstdint>

#include "stunt/core/error.h"
#include "stunt/io/safetensors_format.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    const auto header = stunt::io::parse_safetensors_header(data, size, size, "fuzz");
    // A header that passed must describe data inside the file.
    for (const auto& t : header.tensors) {
      if (t.end > header.data_size || t.begin > t.end) __builtin_trap();
    }
  } catch (const stunt::Error&) {
  }
  return 0;
}
