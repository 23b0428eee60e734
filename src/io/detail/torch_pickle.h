#pragma once

#include <ATen/core/Tensor.h>

#include <filesystem>
#include <string>
#include <utility>
#include <vector>

namespace stunt::io::detail {

/// Reads the tensors of a torch.save zip archive with a restricted unpickler: dicts
/// (OrderedDict included), lists, tuples and scalars, tensors and parameters; any other Python
/// object is refused and no code from the file is ever run. Nested containers are flattened to
/// dotted names. Throws FormatError naming the file and the cause.
std::vector<std::pair<std::string, at::Tensor>> read_torch_save(const std::filesystem::path& path);

}  // namespace stunt::io::detail
