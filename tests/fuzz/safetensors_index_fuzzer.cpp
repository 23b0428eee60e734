// libFuzzer target: any text as model.safetensors.index.json.
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string_view>

#include "stunt/core/error.h"
#include "stunt/io/safetensors_index.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    const auto index = stunt::io::parse_safetensors_index(
        std::string_view(reinterpret_cast<const char*>(data), size), "fuzz");
    // An accepted shard name must stay inside the index's folder.
    for (const auto& [tensor, shard] : index.weight_map) {
      const std::filesystem::path path(shard);
      if (path.is_absolute()) __builtin_trap();
      for (const auto& part : path) {
        if (part == "..") __builtin_trap();
      }
    }
  } catch (const stunt::Error&) {
  }
  return 0;
}
