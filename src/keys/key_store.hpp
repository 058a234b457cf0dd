#pragma once

// The tenant key file (APIKEYS_FILE), in the reference gateway's data/apikeys.json shape:
//   {"keys": [{"key", "name", "model"?, "token_limit_per_5h", "expiry_date", "created_at",
//              "last_used", "total_lifetime_tokens",
//              "usage_windows": [{"window_start", "tokens_used"}]}]}
// Read whole on each lookup (callers cache); usage written back by adding deltas under a lock,
// atomically (temp file + fsync + rename).

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "glmproxy/error.hpp"

namespace glmproxy::detail {

struct UsageWindow {
  std::chrono::system_clock::time_point start;
  std::int64_t tokens = 0;
};

struct KeyRecord {
  std::string key, name, model;  ///< model: "" = no override
  std::int64_t token_limit_per_5h = 0;
  std::optional<std::chrono::system_clock::time_point> expiry;  ///< nullopt: never expires
  std::string expiry_date, created_at, last_used;  ///< as in the file ("" when absent or null)
  std::int64_t total_lifetime_tokens = 0;
  std::vector<UsageWindow> usage_windows;
};

/// Usage of one key since the last write, added to what the file holds (never overwriting it),
/// so that processes sharing one file all count.
struct UsageDelta {
  std::string key;
  std::int64_t tokens = 0;
  std::chrono::system_clock::time_point bucket_start;  ///< the usage_windows entry to add to
  std::chrono::system_clock::time_point used_at;       ///< for last_used
};

/// "YYYY-MM-DDTHH:MM:SS[.fff](Z|+HH:MM|-HH:MM)"; nullopt when it is not one.
std::optional<std::chrono::system_clock::time_point> parse_iso8601(std::string_view text);
/// "YYYY-MM-DDTHH:MM:SSZ".
std::string format_iso8601(std::chrono::system_clock::time_point t);

/// Thread safety: thread-safe (a mutex within the process, flock on "<file>.lock" between
/// processes).
class KeyStore {
 public:
  /// Reads and checks the file. InvalidConfig naming the file and, for malformed JSON, the
  /// line:column; for a wrong shape, the JSON path and what was expected.
  static Result<std::unique_ptr<KeyStore>> open(std::string path);

  /// Reads the file again (counted) and returns `key`'s record, or nullopt without one.
  Result<std::optional<KeyRecord>> find(std::string_view key);

  /// Under the lock: reads the file, adds every delta (tokens to the window starting at
  /// bucket_start, total_lifetime_tokens, last_used = the later one), drops windows that
  /// started before `keep_after`, and replaces the file atomically. Deltas of keys no longer in
  /// the file are dropped. Returns how many keys changed. Counted as one write.
  Result<std::size_t> apply(const std::vector<UsageDelta>& deltas,
                            std::chrono::system_clock::time_point keep_after);

  /// open() and find() calls (apply()'s own re-read is part of its write).
  std::uint64_t reads() const noexcept { return reads_.load(); }
  std::uint64_t writes() const noexcept { return writes_.load(); }
  const std::string& path() const noexcept { return path_; }

 private:
  explicit KeyStore(std::string path) : path_(std::move(path)) {}
  Result<std::vector<KeyRecord>> load();  // mu_ held; not counted (apply() re-reads too)

  const std::string path_;
  std::mutex mu_;
  std::atomic<std::uint64_t> reads_{0}, writes_{0};
};

}  // namespace glmproxy::detail
