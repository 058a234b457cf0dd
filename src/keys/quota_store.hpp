#pragma once

// The QuotaStore seam: who may call under a tenant key, and the tokens each key used over its
// rolling 5-hour window. Today's implementation is Tenants (the key file, APIKEYS_FILE, with its
// usage written back in batches); a shared one (Redis counters, a later issue) implements the
// same calls, and the call pipeline does not change.

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "glmproxy/config.hpp"
#include "glmproxy/error.hpp"
#include "glmproxy/keys.hpp"

namespace glmproxy::detail {

/// Thread safety: implementations are thread-safe. No exception leaves them.
class QuotaStore {
 public:
  virtual ~QuotaStore() = default;
  /// What a request may do under `key`: Unauthorized (unknown or empty key), Forbidden
  /// (expired), QuotaExceeded (with retry_after). On success, the key's model override ("" for
  /// none).
  virtual Result<std::string> admit(std::string_view key) = 0;
  /// Adds `tokens` the upstream reported for a request of `key`.
  virtual void record_usage(std::string_view key, std::int64_t tokens) noexcept = 0;
  /// A key's record, its window's tokens, what remains, lifetime tokens.
  virtual Result<KeyStats> stats(std::string_view key) = 0;
  /// Forgets what is cached about `key`: the next request reads it from the store again.
  virtual void invalidate(std::string_view key) noexcept = 0;
  /// Reads and writes of the backing file, for diagnostics (0 where there is none).
  virtual std::uint64_t file_reads() const noexcept { return 0; }
  virtual std::uint64_t file_writes() const noexcept { return 0; }
};

/// APIKEYS_FILE set: the key file's store (Tenants); nullptr without a key registry.
Result<std::unique_ptr<QuotaStore>> make_quota_store(const Config& config);

}  // namespace glmproxy::detail
