#pragma once

// Whether and when a failed attempt is sent again: a pure decision from the failure, the
// attempts made, the deadline, the time and a random source (docs/transport.md, Retries). The
// driver waits it out; this file only decides. Whether the failure may be retried at all (before
// the first response byte, a retryable Error) is asked before, by the driver.

#include <chrono>
#include <random>

#include "glmproxy/config.hpp"
#include "glmproxy/error.hpp"

namespace glmproxy::detail {

/// Attempts answered "too many at once" (429/1302) are not counted against
/// GLMPROXY_MAX_ATTEMPTS, up to this many; past it they count.
inline constexpr int kMaxFreeRetries = 20;

struct RetryDecision {
  using Clock = std::chrono::steady_clock;
  enum class Kind { Retry, GiveUp };
  Kind kind = Kind::GiveUp;
  Clock::time_point at;  ///< Retry: when the next attempt may start

  bool retry() const noexcept { return kind == Kind::Retry; }
};

/// What the decision is made from.
struct RetryInput {
  using Clock = std::chrono::steady_clock;
  const Error& error;  ///< the attempt's failure (retry_after: the upstream's wish)
  int attempts = 0;    ///< attempts made so far, this one included
  int free_retries = 0;
  Clock::time_point deadline;  ///< the request's overall deadline
  Clock::time_point now;
};

/// Gives up when the counted attempts (attempts - min(free_retries, kMaxFreeRetries)) reached
/// retry.max_attempts, when the upstream's retry_after is longer than retry.retry_after_cap, or
/// when the wait (retry_after, else full-jitter backoff_delay) would reach the deadline.
/// Otherwise Retry at now + the wait.
RetryDecision decide_retry(const RetryConfig& retry, const RetryInput& in, std::mt19937_64& rng);

}  // namespace glmproxy::detail
