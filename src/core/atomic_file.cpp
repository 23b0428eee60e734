#include "stunt/core/atomic_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <random>
#include <system_error>

#include "stunt/core/error.h"
#include "stunt/core/logging.h"

namespace fs = std::filesystem;

namespace stunt {
namespace {

std::string random_suffix() {
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  return str(std::hex, rng() & 0xffffffffffULL);
}

fs::path sibling_temp_name(const fs::path& target) {
  fs::path parent = target.parent_path();
  if (parent.empty()) parent = ".";
  return parent / str(".", target.filename().string(), ".tmp-", getpid(), "-", random_suffix());
}

std::string errno_text() { return std::strerror(errno); }

}  // namespace

void fsync_directory(const fs::path& folder) {
  const fs::path dir = folder.empty() ? fs::path(".") : folder;
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return;  // best effort: some file systems refuse to open folders
  ::fsync(fd);
  ::close(fd);
}

AtomicFile::AtomicFile(fs::path target) : target_(std::move(target)) {
  STUNT_CHECK_AS(IoError, !target_.filename().empty(), "cannot write to '", target_.string(),
                 "': the path names no file");
  temp_ = sibling_temp_name(target_);
  file_ = std::fopen(temp_.c_str(), "wb");
  STUNT_CHECK_AS(IoError, file_ != nullptr, "cannot create '", temp_.string(), "' to write '",
                 target_.string(), "': ", errno_text(),
                 "; check that the folder exists and is writable");
}

AtomicFile::~AtomicFile() {
  if (file_ != nullptr) std::fclose(file_);
  if (!committed_) {
    std::error_code ignored;
    fs::remove(temp_, ignored);
  }
}

void AtomicFile::write(const void* data, std::size_t size) {
  STUNT_ASSERT(file_ != nullptr && !committed_, "write after commit");
  if (size == 0) return;
  STUNT_CHECK_AS(IoError, std::fwrite(data, 1, size, file_) == size, "writing '", target_.string(),
                 "' failed: ", errno_text(), "; check free disk space");
}

void AtomicFile::commit() {
  STUNT_ASSERT(file_ != nullptr && !committed_, "commit twice");
  const bool flushed = std::fflush(file_) == 0 && ::fsync(fileno(file_)) == 0;
  const int saved_errno = errno;
  std::fclose(file_);
  file_ = nullptr;
  errno = saved_errno;
  STUNT_CHECK_AS(IoError, flushed, "flushing '", target_.string(), "' failed: ", errno_text(),
                 "; check free disk space");
  STUNT_CHECK_AS(IoError, std::rename(temp_.c_str(), target_.c_str()) == 0, "renaming '",
                 temp_.string(), "' to '", target_.string(), "' failed: ", errno_text());
  committed_ = true;
  fsync_directory(target_.parent_path());
}

void write_file_atomic(const fs::path& target, std::string_view content) {
  AtomicFile file(target);
  file.write(content);
  file.commit();
}

AtomicDirectory::AtomicDirectory(fs::path target, OutputFolderOptions options)
    : target_(std::move(target)), options_(options) {
  if (target_.filename().empty()) target_ = target_.parent_path();  // "out/" -> "out"
  std::error_code ec;
  if (fs::exists(target_, ec)) {
    STUNT_CHECK_AS(IoError, fs::is_directory(target_, ec), "output '", target_.string(),
                   "' exists and is not a folder; choose another output path");
    STUNT_CHECK_AS(IoError, options_.overwrite || fs::is_empty(target_, ec), "output folder '",
                   target_.string(),
                   "' already exists and is not empty; pass --overwrite to replace it or "
                   "choose another output path");
  }
  // Missing parent folders are created now (the staging folder must sit beside the target,
  // on the same file system) and removed again if the output is never committed.
  for (fs::path p = target_.parent_path(); !p.empty() && !fs::exists(p, ec); p = p.parent_path()) {
    created_parents_.push_back(p);
  }
  for (auto it = created_parents_.rbegin(); it != created_parents_.rend(); ++it) {
    fs::create_directory(*it, ec);
    STUNT_CHECK_AS(IoError, !ec, "cannot create folder '", it->string(), "': ", ec.message());
  }
  staging_ = sibling_temp_name(target_);
  fs::create_directory(staging_, ec);
  STUNT_CHECK_AS(IoError, !ec, "cannot create staging folder '", staging_.string(),
                 "': ", ec.message(), "; check that the output folder's parent is writable");
}

AtomicDirectory::~AtomicDirectory() {
  if (!committed_) {
    std::error_code ignored;
    if (!staging_.empty()) fs::remove_all(staging_, ignored);
    for (const auto& parent : created_parents_) fs::remove(parent, ignored);  // only if empty
  }
}

void AtomicDirectory::commit() {
  STUNT_ASSERT(!committed_, "commit twice");
  for (const auto& entry : fs::recursive_directory_iterator(staging_)) {
    if (entry.is_directory()) fsync_directory(entry.path());
  }
  fsync_directory(staging_);
  std::error_code ec;
  fs::path old;
  if (fs::exists(target_, ec)) {
    // rename(2) cannot replace a non-empty folder: move the old one aside first, so that at
    // every instant either the old or the new folder is in place.
    old = sibling_temp_name(target_);
    fs::rename(target_, old, ec);
    STUNT_CHECK_AS(IoError, !ec, "cannot move the old output '", target_.string(),
                   "' aside: ", ec.message());
  }
  fs::rename(staging_, target_, ec);
  if (ec) {
    if (!old.empty()) fs::rename(old, target_);
    throw IoError(
        str("cannot rename '", staging_.string(), "' to '", target_.string(), "': ", ec.message()));
  }
  committed_ = true;
  fsync_directory(target_.parent_path());
  if (!old.empty()) {
    fs::remove_all(old, ec);
    if (ec) log::warn("could not remove the replaced output '", old.string(), "': ", ec.message());
  }
}

}  // namespace stunt
