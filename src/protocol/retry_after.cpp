// Retry-After (RFC 9110 section 10.2.3) and the retry-after-ms extension (OpenAI, Anthropic).

#include <algorithm>
#include <array>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <optional>
#include <string_view>
#include <system_error>

#include "core/strings.hpp"
#include "protocol/protocol.hpp"

namespace glmproxy::detail {

namespace {

using std::chrono::milliseconds;

// Longer waits are clamped (the transport caps them far lower anyway); keeps the casts in range.
constexpr double kMaxMs = 1e13;  // ~317 years

std::optional<milliseconds> from_ms(double ms) {
  if (!std::isfinite(ms)) return std::nullopt;
  if (ms <= 0) return milliseconds(0);
  return milliseconds(static_cast<std::int64_t>(std::ceil(std::min(ms, kMaxMs))));
}

// A plain decimal number: digits, at most one '.', an optional leading '-'. from_chars alone
// would also take "inf", "1e3" and hex forms.
std::optional<double> parse_decimal(std::string_view s) {
  if (s.empty()) return std::nullopt;
  bool digit = false;
  bool dot = false;
  for (std::size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    if (c >= '0' && c <= '9') {
      digit = true;
    } else if (c == '.' && !dot) {
      dot = true;
    } else if (!(c == '-' && i == 0)) {
      return std::nullopt;
    }
  }
  if (!digit) return std::nullopt;
  double value = 0;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), value);
  if (ec == std::errc::result_out_of_range) return s.front() == '-' ? 0.0 : kMaxMs;
  if (ec != std::errc() || end != s.data() + s.size()) return std::nullopt;
  return value;
}

class Cursor {
 public:
  explicit Cursor(std::string_view s) : s_(s) {}

  bool done() const noexcept { return s_.empty(); }
  bool literal(char c) noexcept {
    if (s_.empty() || s_.front() != c) return false;
    s_.remove_prefix(1);
    return true;
  }
  // Exactly `n` digits.
  bool digits(std::size_t n, int& value) noexcept {
    if (s_.size() < n) return false;
    value = 0;
    for (std::size_t i = 0; i < n; ++i) {
      if (s_[i] < '0' || s_[i] > '9') return false;
      value = value * 10 + (s_[i] - '0');
    }
    s_.remove_prefix(n);
    return true;
  }
  // A run of letters.
  std::string_view word() noexcept {
    std::size_t n = 0;
    while (n < s_.size() && ((s_[n] >= 'a' && s_[n] <= 'z') || (s_[n] >= 'A' && s_[n] <= 'Z'))) {
      ++n;
    }
    const std::string_view w = s_.substr(0, n);
    s_.remove_prefix(n);
    return w;
  }

 private:
  std::string_view s_;
};

constexpr std::array<std::string_view, 12> kMonths = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                                      "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
constexpr std::array<std::string_view, 7> kDays = {"Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"};
constexpr std::array<std::string_view, 7> kLongDays = {
    "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"};

template <std::size_t N>
int index_of(const std::array<std::string_view, N>& names, std::string_view name) noexcept {
  for (std::size_t i = 0; i < N; ++i) {
    if (iequals(names[i], name)) return static_cast<int>(i);
  }
  return -1;
}

bool clock_time(Cursor& c, int& h, int& m, int& s) noexcept {
  return c.digits(2, h) && c.literal(':') && c.digits(2, m) && c.literal(':') && c.digits(2, s);
}

// RFC 9110 5.6.7: IMF-fixdate "Sun, 06 Nov 1994 08:49:37 GMT", obsolete RFC 850
// "Sunday, 06-Nov-94 08:49:37 GMT" and asctime "Sun Nov  6 08:49:37 1994" (recipients must
// accept all three).
std::optional<std::chrono::sys_seconds> parse_http_date(std::string_view text) {
  Cursor c(text);
  const std::string_view day_name = c.word();
  int year = 0;
  int month = -1;
  int day = 0;
  int h = 0;
  int m = 0;
  int s = 0;
  if (c.literal(',')) {
    if (!c.literal(' ')) return std::nullopt;
    if (index_of(kDays, day_name) >= 0) {  // IMF-fixdate
      if (!c.digits(2, day) || !c.literal(' ')) return std::nullopt;
      month = index_of(kMonths, c.word());
      if (!c.literal(' ') || !c.digits(4, year)) return std::nullopt;
    } else if (index_of(kLongDays, day_name) >= 0) {  // RFC 850
      if (!c.digits(2, day) || !c.literal('-')) return std::nullopt;
      month = index_of(kMonths, c.word());
      if (!c.literal('-') || !c.digits(2, year)) return std::nullopt;
      // RFC 9110: a two-digit year more than 50 years ahead is in the past century.
      year += year < 70 ? 2000 : 1900;
    } else {
      return std::nullopt;
    }
    if (!c.literal(' ') || !clock_time(c, h, m, s) || !c.literal(' ')) return std::nullopt;
    const std::string_view zone = c.word();
    if (zone != "GMT" && zone != "UTC") return std::nullopt;
  } else {  // asctime
    if (index_of(kDays, day_name) < 0 || !c.literal(' ')) return std::nullopt;
    month = index_of(kMonths, c.word());
    if (!c.literal(' ')) return std::nullopt;
    if (c.literal(' ')) {
      if (!c.digits(1, day)) return std::nullopt;
    } else if (!c.digits(2, day)) {
      return std::nullopt;
    }
    if (!c.literal(' ') || !clock_time(c, h, m, s) || !c.literal(' ') || !c.digits(4, year)) {
      return std::nullopt;
    }
  }
  if (!c.done() || month < 0 || h > 23 || m > 59 || s > 60) return std::nullopt;
  const std::chrono::year_month_day date{std::chrono::year(year),
                                         std::chrono::month(static_cast<unsigned>(month + 1)),
                                         std::chrono::day(static_cast<unsigned>(day))};
  if (!date.ok()) return std::nullopt;
  return std::chrono::sys_days(date) + std::chrono::hours(h) + std::chrono::minutes(m) +
         std::chrono::seconds(s == 60 ? 59 : s);  // a leap second
}

}  // namespace

std::optional<milliseconds> parse_retry_after(std::string_view retry_after,
                                              std::string_view retry_after_ms,
                                              std::chrono::system_clock::time_point now) {
  if (const auto ms = parse_decimal(trim(retry_after_ms))) {
    if (auto delay = from_ms(*ms)) return delay;
  }
  retry_after = trim(retry_after);
  if (retry_after.empty()) return std::nullopt;
  if (const auto seconds = parse_decimal(retry_after)) return from_ms(*seconds * 1000.0);
  if (const auto date = parse_http_date(retry_after)) {
    // In milliseconds: a far date in nanoseconds (system_clock's unit) would overflow. Flooring
    // `now` rounds the delay up, so the caller never comes back early.
    const milliseconds delta =
        std::chrono::time_point_cast<milliseconds>(*date) - std::chrono::floor<milliseconds>(now);
    return std::max(delta, milliseconds(0));
  }
  return std::nullopt;
}

}  // namespace glmproxy::detail
