#include "transport/retry_policy.hpp"

#include <algorithm>

#include "transport/backoff.hpp"

namespace glmproxy::detail {

RetryDecision decide_retry(const RetryConfig& retry, const RetryInput& in, std::mt19937_64& rng) {
  RetryDecision give_up;
  // Answers to our own excess concurrency (429/1302) do not use up attempts: the limiter has
  // already cut the concurrency, and the request was not processed. The deadline still holds.
  const int counted = in.attempts - std::min(in.free_retries, kMaxFreeRetries);
  if (counted >= retry.max_attempts) return give_up;
  std::chrono::milliseconds delay;
  if (in.error.retry_after) {
    if (*in.error.retry_after > retry.retry_after_cap) return give_up;
    delay = *in.error.retry_after;
  } else {
    delay = backoff_delay(retry, in.attempts, rng);
  }
  if (in.now + delay >= in.deadline) return give_up;
  return RetryDecision{.kind = RetryDecision::Kind::Retry, .at = in.now + delay};
}

}  // namespace glmproxy::detail
