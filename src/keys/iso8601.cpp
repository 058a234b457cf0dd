// ISO 8601 times: parsed without locale, time zone database or gmtime, formatted in UTC.

#include "keys/iso8601.hpp"

#include <fmt/format.h>

#include <cstdint>

namespace glmproxy::detail {

namespace {

using SysClock = std::chrono::system_clock;

bool is_digit(char c) noexcept { return c >= '0' && c <= '9'; }

int two_digits(std::string_view s, std::size_t at) noexcept {
  if (at + 2 > s.size() || !is_digit(s[at]) || !is_digit(s[at + 1])) return -1;
  return (s[at] - '0') * 10 + (s[at + 1] - '0');
}

}  // namespace

std::optional<SysClock::time_point> parse_iso8601(std::string_view s) {
  // YYYY-MM-DDTHH:MM:SS, then [.fraction], then Z or +HH:MM / -HH:MM (RFC 3339 section 5.6).
  if (s.size() < 20 || s[4] != '-' || s[7] != '-' || (s[10] != 'T' && s[10] != 't') ||
      s[13] != ':' || s[16] != ':') {
    return std::nullopt;
  }
  const int y1 = two_digits(s, 0), y2 = two_digits(s, 2), mo = two_digits(s, 5),
            d = two_digits(s, 8), h = two_digits(s, 11), mi = two_digits(s, 14),
            se = two_digits(s, 17);
  // Second 60: a leap second, which system_clock (Unix time) folds into the next minute.
  if (y1 < 0 || y2 < 0 || mo < 1 || mo > 12 || d < 1 || h < 0 || h > 23 || mi < 0 || mi > 59 ||
      se < 0 || se > 60) {
    return std::nullopt;
  }
  const std::chrono::year_month_day ymd{std::chrono::year(y1 * 100 + y2),
                                        std::chrono::month(static_cast<unsigned>(mo)),
                                        std::chrono::day(static_cast<unsigned>(d))};
  if (!ymd.ok()) return std::nullopt;
  std::size_t i = 19;
  std::chrono::nanoseconds fraction{0};
  if (i < s.size() && s[i] == '.') {
    ++i;
    std::int64_t ns = 0;
    int n = 0;
    for (; i < s.size() && is_digit(s[i]); ++i, ++n) {
      if (n < 9) ns = ns * 10 + (s[i] - '0');
    }
    if (n == 0) return std::nullopt;
    for (int k = n; k < 9; ++k) ns *= 10;
    fraction = std::chrono::nanoseconds(ns);
  }
  std::chrono::minutes offset{0};
  if (i < s.size() && (s[i] == 'Z' || s[i] == 'z')) {
    ++i;
  } else if (i < s.size() && (s[i] == '+' || s[i] == '-')) {
    const int oh = two_digits(s, i + 1), om = two_digits(s, i + 4);
    if (i + 6 > s.size() || s[i + 3] != ':' || oh < 0 || oh > 23 || om < 0 || om > 59) {
      return std::nullopt;
    }
    offset = std::chrono::hours(oh) + std::chrono::minutes(om);
    if (s[i] == '-') offset = -offset;
    i += 6;
  } else {
    return std::nullopt;
  }
  if (i != s.size()) return std::nullopt;
  // In seconds first: years 0000 to 9999 fit, but system_clock's nanoseconds only reach 1677 to
  // 2262, and "9999-12-31T23:59:59Z" is a common "never expires". Times outside its range are
  // held at its ends (overflowing them would be undefined behaviour).
  const std::chrono::sys_seconds secs = std::chrono::sys_days(ymd) + std::chrono::hours(h) +
                                        std::chrono::minutes(mi) + std::chrono::seconds(se) -
                                        offset;
  constexpr auto kLatest = std::chrono::floor<std::chrono::seconds>(SysClock::time_point::max());
  constexpr auto kEarliest = std::chrono::ceil<std::chrono::seconds>(SysClock::time_point::min());
  if (secs >= kLatest) return SysClock::time_point::max();
  if (secs <= kEarliest) return SysClock::time_point::min();
  return std::chrono::time_point_cast<SysClock::duration>(secs) +
         std::chrono::floor<SysClock::duration>(fraction);
}

std::string format_iso8601(SysClock::time_point t) {
  const auto secs = std::chrono::floor<std::chrono::seconds>(t);
  const auto days = std::chrono::floor<std::chrono::days>(secs);
  const std::chrono::year_month_day ymd{days};
  const std::chrono::hh_mm_ss hms{secs - days};
  return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z", static_cast<int>(ymd.year()),
                     static_cast<unsigned>(ymd.month()), static_cast<unsigned>(ymd.day()),
                     hms.hours().count(), hms.minutes().count(), hms.seconds().count());
}

// Each public function runs in no_throw(): an allocation failure (a file near the size limit
// needs several times its size while parsed) or a std::system_error from a mutex becomes an

}  // namespace glmproxy::detail
