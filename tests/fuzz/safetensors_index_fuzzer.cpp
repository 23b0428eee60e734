// libFuzzer target: any text as model.safetensors.index.json.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "stunt/core/error.h"
#include "stunt/io/safetensors_index.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    const auto index = stunt::io::parse_safetensors_index(
        std::string_view(reinterpret_cast<const char*>(data), size), "fuzz");
    for (const auto& [tensor, shard] : index.weight_map) {
      if (shard.find("..") == 0 || (!shard.empty() && shard[0] == '/')) __builtin_trap();
    }
  } catch (const stunt::Error&) {
  }
  return 0;
}
