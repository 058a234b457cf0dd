#pragma once

// Which waiting transfer goes on the wire next (docs/transport.md, Admission and the pool): the
// pool bound (POOL_MAX_CONNECTIONS), each model's concurrency allowance (a ConcurrencyLimiter:
// the in-memory AIMD limiter today), each host's circuit breaker, FIFO order in which a
// transfer held by its model's limit lets later ones of other models pass, and the acquire
// timeout. It returns decisions and keeps the limiter's and the breaker's books; the driver
// carries the decisions out. No curl call is made here, so it is tested without a socket
// (tests/transport/transport_policy_test.cpp, and against a limiter double in
// tests/transport/admission_queue_test.cpp).

#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "admission/circuit_breaker.hpp"
#include "admission/concurrency_limiter.hpp"
#include "glmproxy/config.hpp"
#include "transport/transfer.hpp"

namespace glmproxy::detail {

/// The upstream-protection counters of TransportStats.
struct AdmissionStats {
  std::uint64_t concurrency_decreases = 0;
  std::uint64_t breaker_opened = 0;
  std::uint64_t breaker_rejections = 0;
  int model_concurrency_max = 0;
  std::map<std::string, int> model_limits;  ///< models held below the max: their limit now
};

/// Thread safety: not thread-safe (the I/O thread owns it), except stats(): thread-safe.
class AdmissionQueue {
 public:
  using Clock = std::chrono::steady_clock;

  struct Decision {
    enum class Kind {
      Admit,   ///< start it: it holds its model's lease (Transfer::lease), passed the breaker
      Reject,  ///< answer it with `error` (an open breaker, or its total deadline passed)
      Expire,  ///< it waited POOL_ACQUIRE_TIMEOUT: answer it with `error` (PoolTimeout)
    };
    Kind kind = Kind::Admit;
    TransferPtr transfer;
    Error error;  ///< Reject and Expire: the answer
  };
  using Act = std::function<void(Decision)>;

  /// How an attempt that admit() let through ended.
  struct AttemptEnd {
    bool answered = false;          ///< curl succeeded, or a response arrived before it failed
    const Error* answer = nullptr;  ///< the attempt's non-2xx answer as an Error, if read
  };

  /// The model limits come from `limiter`; none: make_concurrency_limiter(config).
  explicit AdmissionQueue(const Config& config,
                          std::unique_ptr<ConcurrencyLimiter> limiter = nullptr);

  /// `t` joins the end of the queue (Waiting) and may wait POOL_ACQUIRE_TIMEOUT from `now`.
  void push(TransferPtr t, Clock::time_point now);

  /// One pass in FIFO order while fewer than POOL_MAX_CONNECTIONS are on the wire (`on_wire()`
  /// is asked before each start: acting on a decision changes it). A transfer whose model is at
  /// its limit is held (stays, unless its deadline passed) and later ones pass it, looking at
  /// most kAdmitScan entries past held ones. `act` is called once per Admit or Reject.
  void admit(Clock::time_point now, const std::function<int()>& on_wire, const Act& act);

  /// Expire for every transfer at the front whose POOL_ACQUIRE_TIMEOUT passed, saying whether
  /// the pool (`on_wire` transfers on the wire) or its model's limit held it.
  void expire(Clock::time_point now, int on_wire, const Act& act);

  /// An admitted attempt ended: the breaker and the model's limiter learn how. A "too many at
  /// once" answer is Overloaded to the limiter (which cuts the limit) and counts as a free retry
  /// (t.free_retries). A lease given back earlier (ReadingOut) is not given back twice.
  void on_attempt_end(Transfer& t, const AttemptEnd& end, Clock::time_point now);

  /// Gives `t`'s lease back with `outcome` (a stream answered while still on the wire), once:
  /// t.lease is empty afterwards, and releasing an empty one does nothing.
  void release(Transfer& t, ConcurrencyLimiter::Outcome outcome, Clock::time_point now);

  /// An admitted transfer never went on the wire (its options were refused): both slots back.
  void abandon(Transfer& t, Clock::time_point now);

  bool empty() const noexcept { return waiting_.empty(); }
  std::size_t size() const noexcept { return waiting_.size(); }
  /// The earliest acquire deadline, when anything waits.
  std::optional<Clock::time_point> next_expiry() const;
  /// Everything waiting, in order (at shutdown).
  std::vector<TransferPtr> take_all();

  AdmissionStats stats() const noexcept;

  /// The most waiting transfers one pass looks at past ones held by their model's limit.
  static constexpr std::size_t kAdmitScan = 256;

 private:
  void publish_limit(const std::string& model, int before);

  int pool_max_;
  std::chrono::milliseconds acquire_timeout_;
  std::chrono::milliseconds total_timeout_;
  AdmissionConfig admission_;
  std::deque<TransferPtr> waiting_;
  std::unique_ptr<ConcurrencyLimiter> limiter_;  // never null
  CircuitBreaker breaker_;
  const int limit_max_;  // each model's starting and highest limit
  std::atomic<std::uint64_t> decreases_{0}, opened_{0}, rejections_{0};
  mutable std::mutex limits_mu_;
  std::map<std::string, int> model_limits_;  // guarded by limits_mu_: models below limit_max_
};

}  // namespace glmproxy::detail
