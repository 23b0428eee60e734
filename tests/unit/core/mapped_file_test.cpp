#include "stunt/core/mapped_file.h"

#include <unistd.h>

#include <string>

#include "test_util.h"

namespace stunt {
namespace {

TEST(MappedFile, LastReleaseDropsTheRangesWholePagesAndTheirWrites) {
  const size_t page = static_cast<size_t>(::sysconf(_SC_PAGESIZE));
  test::TempDir dir;
  std::string content(8 * page, 'a');
  test::write_text(dir / "f.bin", content);
  auto file = MappedFile::open(dir / "f.bin");
  // A range covering pages 1..5 whole, starting mid-page 0 and ending mid-page 6.
  const uint64_t offset = page / 2;
  const uint64_t length = 6 * page;
  file->acquire(offset);
  file->acquire(offset);
  uint8_t* data = file->data();
  data[page + 7] = 'b';  // a copy-on-write page of the range
  data[0] = 'c';         // the first page is shared with whatever precedes the range
  file->release(offset, length);
  EXPECT_EQ(data[page + 7], 'b') << "a user remains: nothing may be dropped";
  file->release(offset, length);
  EXPECT_EQ(data[page + 7], 'a') << "the last user is gone: the file's bytes come back";
  EXPECT_EQ(data[0], 'c') << "a page partly outside the range stays";
  EXPECT_EQ(test::read_text(dir / "f.bin"), content) << "the file never changes";
}

TEST(MappedFile, ReleaseOfAnUnknownRangeDoesNothing) {
  const size_t page = static_cast<size_t>(::sysconf(_SC_PAGESIZE));
  test::TempDir dir;
  test::write_text(dir / "f.bin", std::string(4 * page, 'a'));
  auto file = MappedFile::open(dir / "f.bin");
  file->data()[page + 1] = 'b';
  file->release(0, 4 * page);
  EXPECT_EQ(file->data()[page + 1], 'b');
}

}  // namespace
}  // namespace stunt
