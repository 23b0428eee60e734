#pragma once

#include <c10/util/Exception.h>

#include <filesystem>
#include <string>

namespace stunt::io::detail {

/// The first line of a LibTorch error, without its backtrace: enough for a one-line message.
inline std::string first_line(const c10::Error& e) {
  const std::string message = e.what_without_backtrace();
  return message.substr(0, message.find('\n'));
}

/// True when the zip archive at `path` holds TorchScript code (a `code/` tree or constants.pkl),
/// false for a torch.save archive; throws FormatError when it is not a readable PyTorch zip.
bool is_torchscript_archive(const std::filesystem::path& path);

}  // namespace stunt::io::detail
