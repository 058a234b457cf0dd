#pragma once

// Tenant keys (APIKEYS_FILE), the QuotaStore of the key file: who is calling, whether the key is
// valid, its model override, its token quota over a rolling 5-hour window, and its usage written
// back to the key file in batches (RATE_LIMIT_BATCH_INTERVAL_MS / RATE_LIMIT_MAX_BATCH_SIZE).

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <vector>

#include "cache/lru_cache.hpp"
#include "core/secrets.hpp"
#include "glmproxy/config.hpp"
#include "glmproxy/error.hpp"
#include "glmproxy/keys.hpp"
#include "glmproxy/log.hpp"
#include "keys/key_store.hpp"
#include "keys/quota_store.hpp"
#include "keys/quota_window.hpp"

namespace glmproxy::detail {

/// No exception leaves it, nor its writer thread: one thrown inside (std::bad_alloc,
/// std::system_error, a throwing Config::wall_clock) is an Error with code Internal where a
/// function returns one, else an Error line to Config::logger (a write that failed too: the
/// batch is lost, never more).
///
/// Thread safety: thread-safe. Config::logger is called on the calling thread or the writer
/// thread.
class Tenants final : public QuotaStore {
 public:
  using WallClock = std::function<std::chrono::system_clock::time_point()>;

  /// Opens and checks the key file (InvalidConfig naming it and what is wrong) and starts the
  /// writer thread (Internal when it cannot start).
  static Result<std::unique_ptr<Tenants>> create(const Config& config);
  ~Tenants() override;  ///< writes the usage still pending
  Tenants(const Tenants&) = delete;
  Tenants& operator=(const Tenants&) = delete;

  /// What a request may do under its key: Unauthorized (unknown or empty key), Forbidden
  /// (expired, with the date), QuotaExceeded (the window's tokens reached the limit, with
  /// retry_after = when enough of them leave it). On success, the key's model override ("" for
  /// none).
  Result<std::string> admit(std::string_view key) override;

  /// Adds `tokens` the upstream reported for a request of `key` (quota and usage file).
  /// A negative count adds nothing; sums stop at INT64_MAX.
  void record_usage(std::string_view key, std::int64_t tokens) noexcept override;

  Result<KeyStats> stats(std::string_view key) override;
  void invalidate(std::string_view key) noexcept override;
  /// Writes pending usage now (also done on destruction).
  void flush() noexcept;

  std::uint64_t file_reads() const noexcept override { return store_->reads(); }
  std::uint64_t file_writes() const noexcept override { return store_->writes(); }

 private:
  using RecordPtr = std::shared_ptr<const KeyRecord>;  // nullptr: no such key (cached too)
  struct Usage {
    QuotaWindow window;
    std::int64_t lifetime = 0;
    std::chrono::system_clock::time_point last_used{};
    bool used = false;
  };

  Tenants(const Config& config, std::unique_ptr<KeyStore> store);
  // The public functions without their exception guard.
  Result<std::string> admit_unguarded(std::string_view key);
  void record_usage_unguarded(std::string_view key, std::int64_t tokens);
  Result<KeyStats> stats_unguarded(std::string_view key);
  void log(LogLevel level, std::string_view message) const noexcept;
  Result<RecordPtr> record(std::string_view key);
  /// record(), with Unauthorized for a key the file does not have.
  Result<RecordPtr> known_record(std::string_view key);
  Usage& usage_of(const KeyRecord& record);  // mu_ held
  std::chrono::system_clock::time_point now() const {
    return wall_clock_ ? wall_clock_() : std::chrono::system_clock::now();
  }
  void writer() noexcept;
  void write_pending(std::unique_lock<std::mutex>& lock) noexcept;  // mu_ held

  const RateLimitConfig limits_;
  const WallClock wall_clock_;
  const LogCallback logger_;
  const LogLevel log_level_;
  std::unique_ptr<KeyStore> store_;
  LruCache<RecordPtr> records_;  // APIKEY_CACHE_SIZE, APIKEY_CACHE_TTL_MS
  SecretScope secrets_;          // every key of the file at open, and keys found later: scrubbed

  std::mutex mu_;
  std::condition_variable cv_;
  std::unordered_map<std::string, Usage> usage_;  // guarded by mu_
  // Usage not yet in the file: (key, bucket) -> tokens, with the latest use per key.
  std::map<std::pair<std::string, std::int64_t>, std::int64_t> pending_;
  std::map<std::string, std::chrono::system_clock::time_point> pending_used_at_;
  std::size_t pending_updates_ = 0;
  std::chrono::steady_clock::time_point first_pending_{};
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace glmproxy::detail
