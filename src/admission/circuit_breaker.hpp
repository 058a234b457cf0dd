#pragma once

// Per-upstream circuit breakers: after a run of failures, stop sending to an upstream for a
// cooldown instead of making every caller wait for its own timeout, then test it with one request.

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <string_view>

namespace glmproxy::detail {

struct BreakerOptions {
  /// Consecutive failures that open the breaker; 0 (or negative) disables the breaker.
  int failure_threshold = 5;
  /// The failures must all fall within this window of the first of them: a failure later than
  /// that restarts the count at 1. Negative acts as 0.
  std::chrono::milliseconds failure_window{30000};
  /// Open this long, then one probe is let through (half-open). Negative acts as 0.
  std::chrono::milliseconds cooldown{10000};
};

/// Circuit breakers keyed by upstream (e.g. "https://open.bigmodel.cn:443"), each independent.
///
/// Closed: every request goes. failure_threshold consecutive failures, all within failure_window
/// of the first, open the breaker. Open: nothing goes until the cooldown has passed; then the
/// breaker is HalfOpen and allow() lets exactly one request through, the probe. The probe's success
/// closes the breaker; its failure opens it again for a full cooldown.
///
/// Reports are per key, not per request, so they are attributed by state: a success from any
/// request closes the breaker (the upstream answered, whichever request it was); a failure while
/// Open is part of the run that opened it and changes nothing; a failure while HalfOpen is taken
/// as the probe's. A probe that has not reported within one cooldown is presumed lost and the next
/// allow() sends another: an LLM answer can outlast the cooldown, and a second probe costs one
/// request, whereas a breaker stuck half-open would cut the upstream off for good. Callers should
/// still report every request allow() let through, with on_abandon() when it ended without a
/// verdict (cancelled, or an error that says nothing about the upstream).
///
/// Memory: a key's state is dropped on success, so only upstreams that recently failed are held.
///
/// Thread safety: not thread-safe. The owner (the transport's I/O thread) serialises all calls;
/// time is passed in, never read.
/// Example:
///   std::chrono::milliseconds wait{};
///   if (!breaker.allow(upstream, now, &wait)) return fail_fast(Unavailable, wait);
///   ...  // when the request ends:
///   ok ? breaker.on_success(upstream) : breaker.on_failure(upstream, Clock::now());
class CircuitBreaker {
 public:
  using Clock = std::chrono::steady_clock;

  enum class State { Closed, Open, HalfOpen };

  explicit CircuitBreaker(BreakerOptions options)
      : threshold_(std::max(0, options.failure_threshold)),
        window_(std::max(options.failure_window, std::chrono::milliseconds(0))),
        cooldown_(std::max(options.cooldown, std::chrono::milliseconds(0))) {}

  /// Whether a request to `key` may go now. Closed: yes. Open: no until the cooldown has passed;
  /// then the breaker becomes HalfOpen and exactly one request, the probe, gets true; others get
  /// false until the probe reports. When the answer is false, `retry_after` (if given) receives how
  /// long until the next probe may go, rounded up to whole milliseconds; 0 while a probe is out.
  bool allow(std::string_view key, Clock::time_point now,
             std::chrono::milliseconds* retry_after = nullptr) {
    if (threshold_ == 0) return true;
    auto it = keys_.find(key);
    if (it == keys_.end()) return true;
    Entry& e = it->second;
    switch (e.state) {
      case State::Closed:
        return true;
      case State::Open:
        if (now < e.open_until) {
          if (retry_after)
            *retry_after = std::chrono::ceil<std::chrono::milliseconds>(e.open_until - now);
          return false;
        }
        break;
      case State::HalfOpen:
        if (now - e.probe_sent < cooldown_ && e.probe_out) {
          if (retry_after) *retry_after = std::chrono::milliseconds(0);
          return false;
        }
        break;
    }
    e.state = State::HalfOpen;
    e.probe_out = true;
    e.probe_sent = now;
    return true;
  }

  /// A request allow() let through succeeded: the breaker closes and the count restarts.
  void on_success(std::string_view key) {
    auto it = keys_.find(key);
    if (it != keys_.end()) keys_.erase(it);
  }

  /// A request allow() let through failed (connection failure, timeout, 5xx: the caller decides).
  /// Counts a consecutive failure; reaching the threshold within the window opens the breaker;
  /// a failed probe opens it again for a full cooldown.
  void on_failure(std::string_view key, Clock::time_point now) {
    if (threshold_ == 0) return;
    auto it = keys_.find(key);
    if (it == keys_.end()) it = keys_.emplace(std::string(key), Entry{}).first;
    Entry& e = it->second;
    switch (e.state) {
      case State::Closed:
        if (e.failures == 0 || now - e.first_failure > window_) {
          e.failures = 1;
          e.first_failure = now;
        } else {
          ++e.failures;
        }
        if (e.failures >= threshold_) open(e, now);
        break;
      case State::Open:
        // Sent before the breaker opened: the same run of failures, already acted on.
        ++e.failures;
        break;
      case State::HalfOpen:
        ++e.failures;
        open(e, now);
        break;
    }
  }

  /// A request allow() let through ended without a verdict on the upstream (cancelled by the
  /// caller, or a failure that is not the upstream's). If a probe is out, the next allow() may send
  /// another at once; otherwise nothing changes.
  void on_abandon(std::string_view key) {
    auto it = keys_.find(key);
    if (it != keys_.end() && it->second.state == State::HalfOpen) it->second.probe_out = false;
  }

  /// The key's state at `now`: Open whose cooldown has passed reads as HalfOpen (a probe may go).
  State state(std::string_view key, Clock::time_point now) const {
    auto it = keys_.find(key);
    if (threshold_ == 0 || it == keys_.end()) return State::Closed;
    const Entry& e = it->second;
    if (e.state == State::Open && now >= e.open_until) return State::HalfOpen;
    return e.state;
  }

  /// Failures reported since the key's last success (including those while open).
  int consecutive_failures(std::string_view key) const {
    auto it = keys_.find(key);
    return it == keys_.end() ? 0 : it->second.failures;
  }

  /// Times any breaker opened, counting each reopening after a failed probe.
  std::uint64_t opened() const noexcept { return opened_; }

 private:
  struct Entry {
    State state = State::Closed;
    int failures = 0;
    bool probe_out = false;
    Clock::time_point first_failure{};  // of the current run, while Closed
    Clock::time_point open_until{};     // while Open
    Clock::time_point probe_sent{};     // while HalfOpen
  };

  void open(Entry& e, Clock::time_point now) {
    e.state = State::Open;
    e.open_until = now + cooldown_;
    e.probe_out = false;
    ++opened_;
  }

  int threshold_;
  std::chrono::milliseconds window_;
  std::chrono::milliseconds cooldown_;
  std::map<std::string, Entry, std::less<>> keys_;
  std::uint64_t opened_ = 0;
};

}  // namespace glmproxy::detail
