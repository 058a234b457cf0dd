#pragma once

// Adaptive per-key concurrency limits (AIMD: additive increase, multiplicative decrease), the
// scheme TCP congestion control uses, applied to requests in flight per model. Z.AI answers 429
// with business code 1302 when an account has too many concurrent requests for a model, and the
// allowed number is neither published nor fixed; the limiter finds it by backing off on 1302 and
// probing upwards slowly while requests succeed. The in-memory ConcurrencyLimiter.

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "admission/concurrency_limiter.hpp"

namespace glmproxy::detail {

struct AimdOptions {
  int max_limit = 10;  ///< the starting and highest limit; raised to min_limit if below it
  int min_limit = 1;   ///< the lowest limit; raised to 1 if below it
  /// At most one +1 per interval, and none within this long after a decrease; negative acts as 0.
  std::chrono::milliseconds increase_interval{5000};
};

/// Per-key concurrency limits that adapt to the upstream's answers.
///
/// Algorithm, per key (keys are independent):
/// - The limit starts at max_limit. can_start() says whether in_flight < limit.
/// - Overloaded (429 concurrency, Z.AI 1302): limit = max(min_limit, limit / 2), once per
///   congestion event (below).
/// - Success: counted; once `limit` successes have been counted since the last change and at least
///   increase_interval has passed since it, limit += 1 (never above max_limit), and counting
///   starts again. So the limit climbs back one step per interval at most, and only while a full
///   window of requests at the current limit succeeds.
/// - Other: releases the slot and says nothing about concurrency.
///
/// Once per congestion event: when the limit is exceeded, every request then in flight tends to
/// get 1302 at about the same moment. Halving for each of them would take a limit of 10 with 10
/// in flight to 1 instead of 5. So each decrease starts a new generation, on_start() hands the
/// request the generation it started in, and an Overloaded answer only decreases the limit when
/// the request started in the current generation, i.e. after the last decrease: requests sent
/// before it were sent under the old limit and are already accounted for. A decrease at min_limit
/// changes nothing but still starts a generation and restarts the increase clock.
///
/// The limit is a target, not a hard cap on what is in flight: after a decrease in_flight may stay
/// above the limit until the older requests end; can_start() is false meanwhile.
///
/// An empty key means "no per-key limit": can_start() is always true and on_start()/on_finish()
/// count nothing. A key's state is dropped when nothing is in flight and its limit is back at
/// max_limit, so memory stays bounded by the keys in use or throttled.
///
/// As a ConcurrencyLimiter: try_acquire() is can_start() then on_start(), the lease's token the
/// ticket; release() is on_finish(). Its leases never expire.
///
/// Thread safety: not thread-safe. The owner (the transport's I/O thread) serialises all calls;
/// time is passed in, never read.
/// Example:
///   if (!limiter.can_start(model)) { keep_queued(); return; }
///   auto ticket = limiter.on_start(model);
///   ...  // when the request ends:
///   limiter.on_finish(model, ticket, AimdLimiter::Outcome::Success, Clock::now());
class AimdLimiter final : public ConcurrencyLimiter {
 public:
  explicit AimdLimiter(AimdOptions options)
      : min_limit_(std::max(1, options.min_limit)),
        max_limit_(std::max(min_limit_, options.max_limit)),
        increase_interval_(std::max(options.increase_interval, std::chrono::milliseconds(0))) {}

  /// Whether one more request for `key` may start now (in_flight(key) < limit(key)).
  bool can_start(std::string_view key) const {
    if (key.empty()) return true;
    auto it = keys_.find(key);
    return it == keys_.end() || it->second.in_flight < it->second.limit;
  }

  /// A request for `key` starts (whether or not can_start() said yes). Returns the ticket to pass
  /// back to on_finish(): the key's generation now.
  std::uint64_t on_start(std::string_view key) {
    if (key.empty()) return 0;
    auto it = keys_.find(key);
    if (it == keys_.end()) it = keys_.emplace(std::string(key), State{.limit = max_limit_}).first;
    ++it->second.in_flight;
    return it->second.generation;
  }

  /// A request that on_start() counted ends; `ticket` is what on_start() returned for it.
  void on_finish(std::string_view key, std::uint64_t ticket, Outcome outcome,
                 Clock::time_point now) {
    if (key.empty()) return;
    auto it = keys_.find(key);
    if (it == keys_.end()) return;  // not started, or finished twice: nothing to release
    State& s = it->second;
    if (s.in_flight > 0) --s.in_flight;
    switch (outcome) {
      case Outcome::Overloaded:
        // A request from an earlier generation was sent before the last decrease, which already
        // answered this congestion event.
        if (ticket >= s.generation) {
          const int halved = std::max(min_limit_, s.limit / 2);
          if (halved < s.limit) ++decreases_;
          s.limit = halved;
          ++s.generation;
          s.successes = 0;
          s.last_change = now;
        }
        break;
      case Outcome::Success:
        if (s.successes < s.limit) ++s.successes;
        if (s.limit < max_limit_ && s.successes >= s.limit &&
            now - s.last_change >= increase_interval_) {
          ++s.limit;
          s.successes = 0;
          s.last_change = now;
        }
        break;
      case Outcome::Other:
        break;
    }
    // Nothing left to remember: no tickets out, and a fresh state would be identical.
    if (s.in_flight == 0 && s.limit == max_limit_) keys_.erase(it);
  }

  std::optional<ConcurrencyLease> try_acquire(std::string_view key, Clock::time_point) override {
    if (!can_start(key)) return std::nullopt;
    return ConcurrencyLease{.token = on_start(key)};
  }

  void release(std::string_view key, const ConcurrencyLease& lease, Outcome outcome,
               Clock::time_point now) override {
    on_finish(key, lease.token, outcome, now);
  }

  /// The key's current limit; max_limit for keys never seen (and for the empty key).
  int limit(std::string_view key) const override {
    auto it = key.empty() ? keys_.end() : keys_.find(key);
    return it == keys_.end() ? max_limit_ : it->second.limit;
  }

  int max_limit() const noexcept override { return max_limit_; }

  /// Requests for `key` started and not yet finished; 0 for the empty key.
  int in_flight(std::string_view key) const {
    auto it = key.empty() ? keys_.end() : keys_.find(key);
    return it == keys_.end() ? 0 : it->second.in_flight;
  }

  /// Times any key's limit was lowered (a congestion event at min_limit lowers nothing and is not
  /// counted).
  std::uint64_t decreases() const noexcept override { return decreases_; }

 private:
  struct State {
    int limit = 1;
    int in_flight = 0;
    int successes = 0;                // since the last change, capped at limit
    std::uint64_t generation = 0;     // decreases (including at min_limit) so far
    Clock::time_point last_change{};  // only read while limit < max_limit, i.e. after a decrease
  };

  int min_limit_;
  int max_limit_;
  std::chrono::milliseconds increase_interval_;
  std::map<std::string, State, std::less<>> keys_;
  std::uint64_t decreases_ = 0;
};

}  // namespace glmproxy::detail
