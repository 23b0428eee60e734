#include "stunt/core/sha256.h"

#include <gtest/gtest.h>

#include <fstream>
#include <string>
#include <utility>
#include <vector>

#include "stunt/core/error.h"
#include "test_util.h"

namespace stunt {
namespace {

TEST(Sha256, FipsExamples) {
  // FIPS 180-4's examples (one block, two blocks) and the empty message.
  EXPECT_EQ(sha256_hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(sha256_hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  EXPECT_EQ(sha256_hex(std::string(1000000, 'a')),
            "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

TEST(Sha256, PaddingBoundariesAndPiecewiseUpdatesMatchHashlib) {
  std::string data;
  for (int i = 0; i < 1000; ++i) data.push_back(static_cast<char>((i * 7 + 3) % 256));
  // Python: hashlib.sha256(bytes((i * 7 + 3) % 256 for i in range(1000))[:n]).hexdigest()
  const std::vector<std::pair<size_t, std::string>> cases = {
      {55, "e7313d333c272e639f790978283f9eb392e843d0f29b7016828bb1daa4aac70b"},
      {56, "4324d65f3c103567f5589c710bc08f8523f929a9272e3af36fc968e52abc6c27"},
      {63, "81c80242132f230c3bd41b3e63bbcff16107339549214a99614ff26664625055"},
      {64, "39e3d7b6b5d075d37d053ad89b24b41bef4f3c29760c84447cab3f3be1882241"},
      {65, "aacca6ff74fdbb296d165a45cecfa04e5127bc008770fbbdd48006f2d2fae95e"},
      {1000, "1e9bc38cbf860b9ec31918b065f9b52476c549a782e0e7990bed8ce3868d2371"}};
  for (const auto& [n, want] : cases) {
    EXPECT_EQ(sha256_hex(std::string_view(data).substr(0, n)), want) << n;
    // Fed in uneven pieces, across block boundaries.
    Sha256 pieces;
    for (size_t at = 0, step = 1; at < n; at += step, step = step * 3 % 97 + 1) {
      pieces.update(data.data() + at, std::min(step, n - at));
    }
    EXPECT_EQ(pieces.hex_digest(), want) << n;
  }
  test::TempDir dir;
  const auto path = dir / "data.bin";
  std::ofstream(path, std::ios::binary) << data;
  EXPECT_EQ(sha256_file(path), cases.back().second);
  EXPECT_THROW(sha256_file(dir / "missing"), IoError);
}

}  // namespace
}  // namespace stunt
