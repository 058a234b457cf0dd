#pragma once

#include <cstdint>
#include <string>

#include "glmproxy/export.hpp"

namespace glmproxy {

/// One tenant key's standing, the shape of the reference gateway's /stats answer, returned by
/// ProxyClient::key_stats(). Timestamps are ISO 8601 UTC strings as in the key file.
///
/// Thread safety: thread-compatible (a plain value).
struct GLMPROXY_API KeyStats {
  std::string key;  ///< redacted to its first 4 characters + "…": the library never returns a key
  std::string name;
  std::string model;  ///< the key's model override ("" = none)
  std::int64_t token_limit_per_5h = 0;
  std::string expiry_date;  ///< "" = never expires
  std::string created_at, last_used;
  bool is_expired = false;
  struct CurrentUsage {
    std::int64_t tokens_used_in_current_window = 0;
    std::string window_started_at;  ///< start of the oldest use still in the window (now if none)
    std::string window_ends_at;     ///< when that oldest use leaves the window
    std::int64_t remaining_tokens = 0;
  } current_usage;
  std::int64_t total_lifetime_tokens = 0;

  /// {"key", "name", "model", "token_limit_per_5h", "expiry_date", "created_at", "last_used",
  ///  "is_expired", "current_usage": {"tokens_used_in_current_window", "window_started_at",
  ///  "window_ends_at", "remaining_tokens"}, "total_lifetime_tokens"}
  std::string to_json() const;
};

}  // namespace glmproxy
