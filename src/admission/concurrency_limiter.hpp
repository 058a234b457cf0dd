#pragma once

// The seam for the per-model concurrency allowance (issue 15; docs/architecture.md, Seams for
// shared state). The transport's admission queue asks it whether a request of a model may
// start, hands back what it was given when the request ends, with how it ended, and reads the
// limits and counters for metrics. Today's implementation is in memory (AimdLimiter, one
// process); a Redis one (src/shared_state/, a later issue) would grant each start as a lease
// with a TTL, so that many processes share one upstream account's allowance, and can be chosen
// in make_concurrency_limiter() without touching the admission queue.

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string_view>

namespace glmproxy {
struct Config;
}

namespace glmproxy::detail {

/// One granted start. What `token` means is the implementation's (AimdLimiter: the model's
/// generation when the request started; a Redis limiter: the lease's id).
struct ConcurrencyLease {
  std::uint64_t token = 0;
};

/// Per-model concurrency allowance: the interface the admission queue holds.
///
/// Contract:
/// - try_acquire() may deny (nullopt): the model is at its limit, or a shared allowance could
///   not be had. Nothing is held then; the caller keeps the request waiting and asks again.
/// - Every granted lease is given back to release() exactly once, with the model it was granted
///   for (AdmissionQueue keeps it in Transfer::lease and empties that on release).
/// - A lease may expire (a shared implementation gives each a TTL, so that a process that died
///   does not hold an allowance forever). Releasing an expired lease is accepted and gives
///   nothing back twice. A TTL of at least GLMPROXY_TOTAL_TIMEOUT_MS never expires under a live
///   holder: that deadline bounds every attempt (CURLOPT_TIMEOUT_MS), streams included.
/// - Outcome::Overloaded (429 with Z.AI business code 1302) is the upstream saying there were
///   too many at once; an implementation may lower the model's limit on it.
/// - An empty model name has no per-model limit: always granted.
///
/// Thread safety: not thread-safe. The transport's I/O thread makes every call, so an
/// implementation must answer without blocking on the network for long (a Redis one would
/// answer from leases it holds ahead). Time is passed in, never read.
/// Example:
///   auto lease = limiter.try_acquire(model, now);
///   if (!lease) { keep_waiting(); return; }
///   ...  // when the request ends:
///   limiter.release(model, *lease, ConcurrencyLimiter::Outcome::Success, now);
class ConcurrencyLimiter {
 public:
  using Clock = std::chrono::steady_clock;

  enum class Outcome {
    Success,     ///< the upstream answered the request
    Overloaded,  ///< 429 concurrency (Z.AI business code 1302)
    Other,       ///< any other end (errors, cancellation): says nothing about concurrency
  };

  virtual ~ConcurrencyLimiter() = default;

  /// A request for `model` asks to start now: a lease, or nullopt for "not now".
  virtual std::optional<ConcurrencyLease> try_acquire(std::string_view model,
                                                      Clock::time_point now) = 0;

  /// The request `lease` let start has ended with `outcome`.
  virtual void release(std::string_view model, const ConcurrencyLease& lease, Outcome outcome,
                       Clock::time_point now) = 0;

  /// The model's current limit; max_limit() for models never seen (and for the empty name).
  virtual int limit(std::string_view model) const = 0;

  /// Each model's starting and highest limit.
  virtual int max_limit() const noexcept = 0;

  /// Times any model's limit was lowered so far (only grows; metrics take differences).
  virtual std::uint64_t decreases() const noexcept = 0;
};

/// The limiter `config` asks for. Today always the in-memory AimdLimiter: each model's limit
/// starts at GLMPROXY_MODEL_CONCURRENCY (0: POOL_MAX_CONNECTIONS), goes down to 1, and climbs
/// back at most one step per GLMPROXY_AIMD_INCREASE_INTERVAL_MS.
std::unique_ptr<ConcurrencyLimiter> make_concurrency_limiter(const Config& config);

}  // namespace glmproxy::detail
