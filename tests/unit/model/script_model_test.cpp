// ScriptModel's errors for files that are not TorchScript archives. The layers, captures, swaps
// and saving are checked against PyTorch in tests/python/test_script_model.py.
#include "stunt/model/script_model.h"

#include <gtest/gtest.h>

#include "stunt/core/error.h"
#include "test_util.h"

namespace stunt::model {
namespace {

template <typename ErrorClass>
std::string message_of(const std::filesystem::path& path) {
  try {
    load_script_model(path);
  } catch (const ErrorClass& e) {
    return e.what();
  }
  ADD_FAILURE() << "no error for " << path;
  return {};
}

TEST(ScriptModel, MissingFileIsAnIoErrorNamingIt) {
  test::TempDir dir;
  const std::string message = message_of<IoError>(dir / "absent.pt");
  EXPECT_NE(message.find("absent.pt: no such file"), std::string::npos) << message;
  EXPECT_NE(message.find("torch.jit.save"), std::string::npos) << message;
}

TEST(ScriptModel, TextFileIsAFormatErrorNamingIt) {
  test::TempDir dir;
  test::write_text(dir / "model.pt", "not a zip archive\n");
  const std::string message = message_of<FormatError>(dir / "model.pt");
  EXPECT_NE(message.find("model.pt: not a TorchScript archive"), std::string::npos) << message;
}

}  // namespace
}  // namespace stunt::model
