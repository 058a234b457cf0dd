#pragma once

// ISO 8601 / RFC 3339 times as the key file writes them (expiry_date, last_used, window_start).

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

namespace glmproxy::detail {

/// "YYYY-MM-DDTHH:MM:SS[.fraction](Z|+HH:MM|-HH:MM)" (RFC 3339; 't' and 'z' also accepted;
/// fraction digits past nanoseconds are ignored); nullopt when `text` is not one or names no
/// real date. A time system_clock cannot hold (its nanoseconds span 1677 to 2262) is held at
/// time_point::min() or max(): "9999-12-31T23:59:59Z" never expires. No locale, no time zone
/// database, no gmtime: thread-safe.
std::optional<std::chrono::system_clock::time_point> parse_iso8601(std::string_view text);
/// "YYYY-MM-DDTHH:MM:SSZ" (sub-second parts are dropped).
std::string format_iso8601(std::chrono::system_clock::time_point t);

}  // namespace glmproxy::detail
