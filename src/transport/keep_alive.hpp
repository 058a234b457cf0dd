#pragma once

// POOL_MIN_CONNECTIONS stay open while the client is idle: before the idle age
// (GLMPROXY_POOL_MAX_IDLE_MS) would make curl drop them, one HEAD request per connection
// refreshes them — only once the client has connected somewhere, never with
// DISABLE_CONNECTION_POOL, and always to the configured base URL last used (never a request's
// own path: a send() path may carry a signed query that must not be re-sent every 15 s).
// Decides and builds the probes; the driver queues them. I/O thread only.

#include <algorithm>
#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "glmproxy/config.hpp"
#include "transport/transfer.hpp"

namespace glmproxy::detail {

class KeepAlive {
 public:
  using Clock = std::chrono::steady_clock;

  KeepAlive(const PoolConfig& pool, std::chrono::milliseconds total_timeout)
      : pool_(pool), total_timeout_(total_timeout) {}

  /// Something was submitted or ended: the idle time restarts.
  void on_activity(Clock::time_point now) noexcept { last_activity_ = now; }

  /// An attempt was sent to `base` (the configured base URL its URL was built from; lives as
  /// long as the Config). A probe does not move the target once one is known.
  void on_sent(const std::string* base, bool probe) noexcept {
    if (!probe || url_ == nullptr) url_ = base;
  }

  /// Whether probes are due now. `idle`: nothing on the wire, waiting or backing off.
  bool due(Clock::time_point now, bool idle) const noexcept {
    return pool_.min_connections > 0 && !pool_.disabled && url_ != nullptr && idle &&
           now >= last_activity_ + pool_.max_idle / 2;
  }

  /// When the I/O thread should look again (nullopt: no need). `nothing_on_wire`: no transfer
  /// on the wire or reading out.
  std::optional<Clock::time_point> next_check(bool nothing_on_wire) const noexcept {
    if (pool_.min_connections <= 0 || url_ == nullptr || !nothing_on_wire) return std::nullopt;
    return last_activity_ + pool_.max_idle / 2;
  }

  /// The probes to queue now (POOL_MIN_CONNECTIONS HEAD requests); restarts the idle time.
  std::vector<TransferPtr> probes(Clock::time_point now) {
    last_activity_ = now;
    std::vector<TransferPtr> out;
    for (int i = 0; i < pool_.min_connections; ++i) {
      auto t = std::make_unique<Transfer>();
      t->ex.method = "HEAD";
      t->ex.url = *url_;
      t->ex.retry_on_status = false;
      t->probe = true;
      t->deadline = now + std::min<std::chrono::milliseconds>(total_timeout_, pool_.max_idle);
      out.push_back(std::move(t));
    }
    return out;
  }

 private:
  PoolConfig pool_;
  std::chrono::milliseconds total_timeout_;
  Clock::time_point last_activity_ = Clock::now();
  const std::string* url_ = nullptr;
};

}  // namespace glmproxy::detail
