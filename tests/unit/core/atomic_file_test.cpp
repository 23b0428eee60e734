#include "stunt/core/atomic_file.h"

#include "stunt/core/error.h"
#include "test_util.h"

namespace stunt {
namespace {

namespace fs = std::filesystem;

size_t entries_in(const fs::path& dir) {
  return static_cast<size_t>(std::distance(fs::directory_iterator(dir), fs::directory_iterator()));
}

TEST(AtomicFile, CommitReplacesTheTargetAtOnce) {
  test::TempDir dir;
  test::write_text(dir / "a.txt", "old");
  {
    AtomicFile file(dir / "a.txt");
    file.write("new content");
    EXPECT_EQ(test::read_text(dir / "a.txt"), "old");  // untouched until commit
    file.commit();
  }
  EXPECT_EQ(test::read_text(dir / "a.txt"), "new content");
  EXPECT_EQ(entries_in(dir.path()), 1u);  // no temporary left behind
}

TEST(AtomicFile, WithoutCommitNothingChangesAndNoTemporaryRemains) {
  test::TempDir dir;
  test::write_text(dir / "a.txt", "old");
  {
    AtomicFile file(dir / "a.txt");
    file.write("half");
  }
  EXPECT_EQ(test::read_text(dir / "a.txt"), "old");
  EXPECT_EQ(entries_in(dir.path()), 1u);
}

TEST(AtomicFile, MissingFolderIsAnIoError) {
  test::TempDir dir;
  EXPECT_THROW_WITH(AtomicFile(dir / "no/such/dir/x"), IoError, "cannot create");
}

TEST(AtomicDirectory, CommitMovesTheStagingFolderIntoPlace) {
  test::TempDir dir;
  {
    AtomicDirectory out(dir / "out");
    test::write_text(out.staging() / "model.safetensors", "x");
    EXPECT_FALSE(fs::exists(dir / "out"));
    out.commit();
  }
  EXPECT_TRUE(fs::exists(dir / "out/model.safetensors"));
  EXPECT_EQ(entries_in(dir.path()), 1u);
}

TEST(AtomicDirectory, InterruptedWorkLeavesTheOldOutputIntact) {
  test::TempDir dir;
  fs::create_directories(dir / "out");
  test::write_text(dir / "out/old.txt", "keep");
  {
    AtomicDirectory out(dir / "out", {.overwrite = true});
    test::write_text(out.staging() / "new.txt", "new");
    // no commit: as if the command was interrupted
  }
  EXPECT_EQ(test::read_text(dir / "out/old.txt"), "keep");
  EXPECT_EQ(entries_in(dir.path()), 1u);
}

TEST(AtomicDirectory, ParentFoldersItCreatedAreRemovedWhenNotCommitted) {
  test::TempDir dir;
  {
    AtomicDirectory out(dir / "a/b/out");
    EXPECT_TRUE(fs::exists(dir / "a/b"));
  }
  EXPECT_EQ(entries_in(dir.path()), 0u);
  {
    AtomicDirectory out(dir / "a/b/out");
    out.commit();
  }
  EXPECT_TRUE(fs::is_directory(dir / "a/b/out"));
}

TEST(AtomicDirectory, OverwriteReplacesAndRefusesWithoutIt) {
  test::TempDir dir;
  fs::create_directories(dir / "out");
  test::write_text(dir / "out/old.txt", "old");
  EXPECT_THROW_WITH(AtomicDirectory(dir / "out"), IoError, "--overwrite");
  {
    AtomicDirectory out(dir / "out", {.overwrite = true});
    test::write_text(out.staging() / "new.txt", "new");
    out.commit();
  }
  EXPECT_FALSE(fs::exists(dir / "out/old.txt"));
  EXPECT_EQ(test::read_text(dir / "out/new.txt"), "new");
  EXPECT_EQ(entries_in(dir.path()), 1u);
}

}  // namespace
}  // namespace stunt
