#pragma once

#include <filesystem>

namespace stunt::io::detail {

/// True when the zip archive at `path` holds TorchScript code (a `code/` tree or constants.pkl),
/// false for a torch.save archive; throws FormatError when it is not a readable PyTorch zip.
bool is_torchscript_archive(const std::filesystem::path& path);

}  // namespace stunt::io::detail
