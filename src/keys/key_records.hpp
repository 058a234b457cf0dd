#pragma once

// The records of the tenant key file, in the reference gateway's data/apikeys.json shape:
//   {"keys": [{"key", "name", "model"?, "token_limit_per_5h", "expiry_date", "created_at",
//              "last_used", "total_lifetime_tokens",
//              "usage_windows": [{"window_start", "tokens_used"}]}]}
// Reading checks every field and names what is wrong; writing keeps what reading kept.

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "glmproxy/error.hpp"

namespace glmproxy::detail {

/// One usage_windows entry.
struct UsageWindow {
  std::chrono::system_clock::time_point start;
  std::int64_t tokens = 0;
  std::string raw_start;  ///< window_start as in the file; "" for a window apply() created
};

/// One entry of "keys".
struct KeyRecord {
  std::string key, name, model;                                 ///< model: "" = no override
  std::int64_t token_limit_per_5h = 0;                          ///< >= 1
  std::optional<std::chrono::system_clock::time_point> expiry;  ///< nullopt: never expires
  std::string expiry_date, created_at, last_used;  ///< as in the file ("" when absent or null)
  std::int64_t total_lifetime_tokens = 0;
  std::vector<UsageWindow> usage_windows;
};

/// The records of the key file at `path` (named in messages) whose contents are `text` (its
/// capacity may grow for simdjson's padding, never its contents). InvalidConfig naming the path:
/// for an empty file; for malformed JSON, with the position as line:column (column in
/// characters) and byte offset and what is wrong there; for a wrong shape, with the JSON path
/// (e.g. keys[3].token_limit_per_5h), the key (redacted) and what was expected; for a key that
/// appears twice. Internal (not InvalidConfig) when simdjson runs out of memory.
Result<std::vector<KeyRecord>> parse_key_records(const std::string& path, std::string& text);

/// The file's text for `records`: the known fields in the reference's order, strings and the raw
/// text of timestamps and window starts as read, absent timestamps as null, a window apply()
/// created with its start formatted. The strings must be valid UTF-8 (as read).
std::string serialize_key_records(const std::vector<KeyRecord>& records);

}  // namespace glmproxy::detail
