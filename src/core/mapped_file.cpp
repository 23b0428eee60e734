#include "stunt/core/mapped_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "stunt/core/error.h"

namespace stunt {

std::shared_ptr<MappedFile> MappedFile::open(const std::filesystem::path& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  STUNT_CHECK_AS(IoError, fd >= 0, "cannot open '", path.string(), "': ", std::strerror(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    throw IoError(str("'", path.string(), "' is not a regular file"));
  }
  std::shared_ptr<MappedFile> file(new MappedFile());
  file->size_ = static_cast<uint64_t>(st.st_size);
  if (file->size_ > 0) {
    void* p = ::mmap(nullptr, file->size_, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
    const int saved = errno;
    ::close(fd);
    STUNT_CHECK_AS(IoError, p != MAP_FAILED, "cannot map '", path.string(), "' (", file->size_,
                   " bytes): ", std::strerror(saved));
    file->data_ = static_cast<uint8_t*>(p);
  } else {
    ::close(fd);
  }
  return file;
}

void MappedFile::acquire(uint64_t offset) {
  std::lock_guard<std::mutex> lock(mutex_);
  ++users_[offset];
}

void MappedFile::release(uint64_t offset, uint64_t length) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = users_.find(offset);
    if (it == users_.end()) return;
    if (--it->second > 0) return;
    users_.erase(it);
  }
  static const uint64_t page = static_cast<uint64_t>(::sysconf(_SC_PAGESIZE));
  const uint64_t begin = (offset + page - 1) / page * page;
  const uint64_t end = std::min(offset + length, size_) / page * page;
  // Pages shared with a neighbouring tensor stay. MADV_DONTNEED on a private file mapping drops
  // the pages (copies made by writes included); failure only means the memory stays counted.
  if (data_ != nullptr && end > begin) ::madvise(data_ + begin, end - begin, MADV_DONTNEED);
}

MappedFile::~MappedFile() {
  if (data_ != nullptr) ::munmap(data_, size_);
}

}  // namespace stunt
