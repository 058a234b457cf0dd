// The key file on disk: the bounded read, the atomic replace and the writers' lock.

#include "keys/key_file_io.hpp"

#include <fcntl.h>
#include <simdjson.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <optional>
#include <system_error>

namespace glmproxy::detail {

namespace {

class UniqueFd {
 public:
  explicit UniqueFd(int fd) noexcept : fd_(fd) {}
  ~UniqueFd() {
    if (fd_ >= 0) ::close(fd_);
  }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  int get() const noexcept { return fd_; }

 private:
  int fd_;
};

// What a file that is not a regular file is, for the message.
std::string_view file_kind(mode_t mode) noexcept {
  if (S_ISDIR(mode)) return "a directory";
  if (S_ISFIFO(mode)) return "a FIFO";
  if (S_ISCHR(mode)) return "a character device";
  if (S_ISBLK(mode)) return "a block device";
  if (S_ISSOCK(mode)) return "a socket";
  return "not a regular file";
}

Error not_regular(const std::string& path, mode_t mode) {
  return key_file_error(path, fmt::format("it is {}, not a regular file", file_kind(mode)));
}

Error too_large(const std::string& path, std::size_t max_bytes, std::optional<std::int64_t> size) {
  return key_file_error(
      path, fmt::format("the file is larger than the limit of {} MiB ({} bytes){}", max_bytes >> 20,
                        max_bytes, size ? fmt::format(": it has {} bytes", *size) : ""));
}

std::string directory_of(const std::string& path) {
  const auto slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : path.substr(0, slash);
}

}  // namespace

Error key_file_error(const std::string& path, std::string_view what) {
  return make_error(ErrorCode::InvalidConfig, fmt::format("APIKEYS_FILE {}: {}", path, what));
}

std::string errno_text(int err) { return std::generic_category().message(err); }

Result<std::string> read_key_file(const std::string& path, std::size_t max_bytes) {
  // O_NONBLOCK: opening a FIFO without a writer would otherwise wait for one. It changes
  // nothing for a regular file; O_NOCTTY keeps a terminal from becoming ours.
  const UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY));
  if (fd.get() < 0) {
    return key_file_error(path, fmt::format("cannot open it ({})", errno_text(errno)));
  }
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) {
    return key_file_error(path, fmt::format("cannot stat it ({})", errno_text(errno)));
  }
  if (!S_ISREG(st.st_mode)) return not_regular(path, st.st_mode);
  if (st.st_size > static_cast<off_t>(max_bytes)) {
    return too_large(path, max_bytes, static_cast<std::int64_t>(st.st_size));
  }
  std::string out;
  // The size fstat saw, plus what simdjson wants after the text: usually one allocation.
  out.reserve(static_cast<std::size_t>(st.st_size) + simdjson::SIMDJSON_PADDING);
  char buf[65536];
  while (out.size() <= max_bytes) {
    const std::size_t want = std::min(sizeof buf, max_bytes + 1 - out.size());
    const ssize_t n = ::read(fd.get(), buf, want);
    if (n < 0) {
      if (errno == EINTR) continue;
      return key_file_error(path, fmt::format("cannot read it ({})", errno_text(errno)));
    }
    if (n == 0) break;
    out.append(buf, static_cast<std::size_t>(n));
  }
  if (out.size() > max_bytes) return too_large(path, max_bytes, std::nullopt);
  return out;
}

Result<void> replace_file(const std::string& path, const std::string& text) {
  static std::atomic<std::uint64_t> counter{0};
  mode_t mode = 0600;
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0) mode = st.st_mode & 0777;
  // Nothing may throw between creating the temp file and the rename (it would be left behind),
  // nor after the rename (a write that happened would be reported as failed): what needs
  // memory is made first (a failed attempt below leaves no file).
  const std::string directory = directory_of(path);
  std::string tmp;
  int fd = -1;
  for (int attempt = 0; attempt < 16 && fd < 0; ++attempt) {
    // pid + counter is unique among live writers; the clock avoids a stale file of a dead one.
    const auto nanos = std::chrono::steady_clock::now().time_since_epoch().count();
    tmp = fmt::format("{}.tmp.{}.{}.{:x}", path, static_cast<long>(::getpid()),
                      counter.fetch_add(1, std::memory_order_relaxed),
                      static_cast<std::uint64_t>(nanos) & 0xFFFFFF);
    fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
    if (fd < 0 && errno != EEXIST) break;
  }
  if (fd < 0) {
    return key_file_error(path, fmt::format("cannot create {} ({})", tmp, errno_text(errno)));
  }
  auto fail = [&](std::string_view what, int err) {
    ::unlink(tmp.c_str());
    return key_file_error(path, fmt::format("cannot {} {} ({})", what, tmp, errno_text(err)));
  };
  std::size_t done = 0;
  while (done < text.size()) {
    const ssize_t n = ::write(fd, text.data() + done, text.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      const int err = errno;
      ::close(fd);
      return fail("write", err);
    }
    done += static_cast<std::size_t>(n);
  }
  if (::fsync(fd) != 0) {
    const int err = errno;
    ::close(fd);
    return fail("flush", err);
  }
  if (::close(fd) != 0) return fail("close", errno);
  if (::rename(tmp.c_str(), path.c_str()) != 0) return fail("rename", errno);
  // The new file is in place; a failed directory fsync only weakens durability after a crash.
  const int dfd = ::open(directory.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    (void)::fsync(dfd);
    ::close(dfd);
  }
  return {};
}

FileLock::FileLock(const std::string& path) {
  // O_NONBLOCK: a FIFO in the lock file's place must not make opening it wait (flock still
  // waits for the lock: only LOCK_NB would stop it).
  fd_ = ::open((path + ".lock").c_str(), O_RDONLY | O_CREAT | O_CLOEXEC | O_NONBLOCK | O_NOCTTY,
               0644);
  if (fd_ < 0) {
    error_ = errno;
    return;
  }
  while (::flock(fd_, LOCK_EX) != 0) {
    if (errno == EINTR) continue;
    error_ = errno;
    ::close(fd_);
    fd_ = -1;
    return;
  }
}

FileLock::~FileLock() {
  if (fd_ >= 0) ::close(fd_);
}

}  // namespace glmproxy::detail
