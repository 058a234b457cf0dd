#pragma once

// Full-jitter exponential backoff (AWS Architecture Blog, "Exponential Backoff And Jitter"): the
// wait after attempt n is uniform in [0, min(GLMPROXY_RETRY_MAX_DELAY_MS,
// GLMPROXY_RETRY_BASE_DELAY_MS * 2^(n-1))]. The decision only; the transport waits it out.

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <random>

#include "glmproxy/config.hpp"

namespace glmproxy::detail {

/// The longest wait after attempt `attempt` (1-based): min(max_delay, base_delay * 2^(attempt-1)),
/// never negative and never overflowing.
inline std::chrono::milliseconds backoff_cap(const RetryConfig& retry, int attempt) noexcept {
  const std::int64_t base = std::max<std::int64_t>(retry.base_delay.count(), 0);
  const std::int64_t max = std::max<std::int64_t>(retry.max_delay.count(), 0);
  const int shift = std::clamp(attempt - 1, 0, 62);
  // base << shift > max exactly when base > max >> shift: compared without overflowing.
  if (base > (max >> shift)) return std::chrono::milliseconds(max);
  return std::chrono::milliseconds(base << shift);
}

/// The wait after attempt `attempt`: uniform in [0, backoff_cap(retry, attempt)].
template <class Rng>
std::chrono::milliseconds backoff_delay(const RetryConfig& retry, int attempt, Rng& rng) {
  std::uniform_int_distribution<std::int64_t> dist(0, backoff_cap(retry, attempt).count());
  return std::chrono::milliseconds(dist(rng));
}

}  // namespace glmproxy::detail
