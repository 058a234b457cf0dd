#pragma once

// The key file on disk (internal to src/keys/): a bounded read that refuses what is not a
// regular file, an atomic replace, and the lock that serialises writers between processes.

#include <cstddef>
#include <string>
#include <string_view>

#include "glmproxy/error.hpp"

namespace glmproxy::detail {

/// InvalidConfig "APIKEYS_FILE <path>: <what>".
Error key_file_error(const std::string& path, std::string_view what);

/// The message of errno value `err` (std::strerror() may share a buffer between threads).
std::string errno_text(int err);

/// The whole file, at most `max_bytes` of it: only a regular file is read (a directory, a
/// device such as /dev/zero, a FIFO or a socket is InvalidConfig saying what it is), and no more
/// than `max_bytes` + 1 bytes, so a file that grows while it is read is refused too instead of
/// exhausting memory. The string has room for simdjson's padding after the text.
Result<std::string> read_key_file(const std::string& path, std::size_t max_bytes);

/// Writes `text` to a new file beside `path` (O_EXCL, the old file's mode), fsyncs it, renames
/// it over `path` and fsyncs the directory: readers see the old file or the new one, never a
/// mix, and a crash leaves one of the two (plus, at worst, a stray temp file). On failure the
/// temp file is removed and `path` is as it was.
Result<void> replace_file(const std::string& path, const std::string& text);

/// An exclusive flock on "<path>.lock" for as long as it lives. flock locks belong to the open
/// file description, so two KeyStore objects in one process exclude each other too.
///
/// Thread safety: not thread-safe (one owner); the lock itself excludes other owners.
class FileLock {
 public:
  explicit FileLock(const std::string& path);
  ~FileLock();  ///< releases the lock
  FileLock(const FileLock&) = delete;
  FileLock& operator=(const FileLock&) = delete;

  bool held() const noexcept { return fd_ >= 0; }
  /// The errno value when the lock could not be taken.
  int error() const noexcept { return error_; }

 private:
  int fd_ = -1;
  int error_ = 0;
};

}  // namespace glmproxy::detail
