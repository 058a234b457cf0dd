#pragma once

// The tenant key file (APIKEYS_FILE), in the reference gateway's data/apikeys.json shape
// (keys/key_records.hpp). Read whole on each lookup (callers cache); usage written back by adding
// deltas under a lock, atomically (temp file + fsync + rename: keys/key_file_io.hpp).

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "glmproxy/error.hpp"
#include "keys/iso8601.hpp"
#include "keys/key_records.hpp"

namespace glmproxy::detail {

/// Usage of one key since the last write, added to what the file holds (never overwriting it),
/// so that two processes sharing one file both count.
struct UsageDelta {
  std::string key;
  std::int64_t tokens = 0;  ///< < 0 counts as 0; sums stop at INT64_MAX
  /// The usage_windows entry to add to (whole seconds: the file keeps seconds only).
  std::chrono::system_clock::time_point bucket_start;
  std::chrono::system_clock::time_point used_at;  ///< for last_used
};

/// The key file: every lookup reads it again, every apply() merges usage into it.
///
/// Writing keeps what it did not change: a record's strings, and the raw text of its timestamps
/// and window starts, are written back as read. Fields this type does not know (in a record or
/// at the top level) are dropped on the first apply(); absent timestamps are written as null.
///
/// No exception leaves it: one thrown inside (std::bad_alloc, std::system_error) is an Error with
/// code Internal naming the file and what was thrown.
///
/// Thread safety: thread-safe. A mutex serialises find() and apply() within the process; an
/// exclusive flock on "<path>.lock" serialises apply() between processes (and between two
/// KeyStore objects on one file), and readers see either the old or the new file thanks to the
/// rename, never a partly written one.
/// Example:
///   auto store = KeyStore::open("data/apikeys.json");
///   if (!store) return store.error();
///   auto record = (*store)->find(key);       // Result<std::optional<KeyRecord>>
///   (*store)->apply({{key, 120, bucket, now}}, now - 5h);
class KeyStore {
 public:
  /// The largest key file read: 64 MiB. A larger one is refused (InvalidConfig) without reading
  /// more than this + 1 bytes of it.
  static constexpr std::size_t kMaxFileBytes = std::size_t{64} << 20;

  /// Reads and checks the file now (counted as a read). Only a regular file of at most
  /// kMaxFileBytes is read: a directory, device (/dev/zero), FIFO or socket, or a larger file,
  /// is InvalidConfig naming APIKEYS_FILE, the path and what it is (so is every later read, in
  /// find() and apply()). InvalidConfig naming the file path when it is missing or unreadable; for
  /// malformed JSON, with the position as line:column (column in characters) and byte offset; for a
  /// wrong shape, with the JSON path (e.g. keys[3].token_limit_per_5h), the key (redacted) and what
  /// was expected; for a key that appears twice.
  static Result<std::unique_ptr<KeyStore>> open(std::string path);

  /// Reads the file again (one counted read) and returns `key`'s record, or nullopt when the file
  /// has no such key. Errors as for open() (a file that became malformed or went away).
  Result<std::optional<KeyRecord>> find(std::string_view key);

  /// Under the lock: reads the file, adds every delta (tokens to the window whose start equals
  /// bucket_start, created when absent; to total_lifetime_tokens; last_used = the later of the
  /// file's and used_at), drops every record's windows that started before `keep_after`, sorts
  /// windows by start and replaces the file atomically (temp file in the same directory created
  /// with O_EXCL, fsync, rename over the file, fsync of the directory). Deltas of keys no longer
  /// in the file are dropped. Returns how many keys got a delta. Counted as one write (its own
  /// read is not counted). Errors: as for open(), and InvalidConfig when the lock or the new file
  /// cannot be made; the file is then left as it was.
  Result<std::size_t> apply(const std::vector<UsageDelta>& deltas,
                            std::chrono::system_clock::time_point keep_after);

  /// open() and find() calls so far.
  std::uint64_t reads() const noexcept { return reads_.load(std::memory_order_relaxed); }
  /// Successful apply() calls so far.
  std::uint64_t writes() const noexcept { return writes_.load(std::memory_order_relaxed); }
  const std::string& path() const noexcept { return path_; }
  /// The keys the file held when open() read it (registered as secrets to scrub).
  const std::vector<std::string>& keys_at_open() const noexcept { return keys_at_open_; }

 private:
  explicit KeyStore(std::string path) : path_(std::move(path)) {}
  Result<std::vector<KeyRecord>> load();  // mu_ held; not counted
  // find() and apply() without the exception guard.
  Result<std::optional<KeyRecord>> find_unguarded(std::string_view key);
  Result<std::size_t> apply_unguarded(const std::vector<UsageDelta>& deltas,
                                      std::chrono::system_clock::time_point keep_after);

  const std::string path_;
  std::vector<std::string> keys_at_open_;
  std::mutex mu_;
  std::atomic<std::uint64_t> reads_{0}, writes_{0};
};

}  // namespace glmproxy::detail
