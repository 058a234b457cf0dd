#pragma once

// Arithmetic on untrusted counts (token numbers from an upstream or a hand-edited file):
// signed overflow is undefined behaviour, so sums saturate instead.

#include <cstdint>
#include <limits>

namespace glmproxy::detail {

/// a + b, clamped to [INT64_MIN, INT64_MAX] instead of overflowing.
constexpr std::int64_t saturating_add(std::int64_t a, std::int64_t b) noexcept {
  constexpr std::int64_t kMax = std::numeric_limits<std::int64_t>::max();
  constexpr std::int64_t kMin = std::numeric_limits<std::int64_t>::min();
  if (b > 0 && a > kMax - b) return kMax;
  if (b < 0 && a < kMin - b) return kMin;
  return a + b;
}

/// `v`, or 0 when it is negative (a count cannot be).
constexpr std::int64_t non_negative(std::int64_t v) noexcept { return v < 0 ? 0 : v; }

}  // namespace glmproxy::detail
