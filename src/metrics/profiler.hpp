#pragma once

// PROFILING_ENABLED: one RequestProfile per request, kept in a ring of
// GLMPROXY_PROFILING_RING_SIZE; a report summarises the ring and lists its slowest requests.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "glmproxy/profiling.hpp"
#include "transport/transfer_marks.hpp"

namespace glmproxy::detail {

/// One request on its way: the facade marks what it sees, the transport fills `transfer`.
/// Written by the calling thread before the hand-off and by the I/O thread before the
/// request's callback; read after the answer.
struct Trace {
  using Clock = std::chrono::steady_clock;
  Clock::time_point start = Clock::now();
  std::chrono::system_clock::time_point started_at = std::chrono::system_clock::now();
  std::string request_id;
  std::string api;
  std::string model;
  bool stream = false;
  bool coalesced = false;
  std::optional<Clock::time_point> cache, first_token;
  std::shared_ptr<TransferMarks> transfer;  ///< set when the request got its own exchange
};

/// Thread safety: thread-safe (one mutex; only taken with PROFILING_ENABLED).
class Profiler {
 public:
  explicit Profiler(std::size_t capacity) : capacity_(capacity == 0 ? 1 : capacity) {}

  /// A trace for a new request; `request_id` empty: one is made up.
  std::shared_ptr<Trace> begin(std::string_view request_id, std::string_view api);

  /// The request ended with `outcome` ("ok", "cache_hit", "error"); `error_code` and
  /// `http_status` describe an error.
  void finish(Trace& trace, std::string_view outcome, std::string_view error_code, int http_status);

  ProfilingReport report(std::size_t slowest) const;
  /// The newest profile with this request id.
  std::optional<RequestProfile> find(std::string_view request_id) const;

 private:
  const std::size_t capacity_;
  std::atomic<std::uint64_t> next_id_{0};
  mutable std::mutex mu_;
  std::vector<RequestProfile> ring_;  // guarded by mu_; oldest at next_ once full
  std::size_t next_ = 0;              // guarded by mu_
  std::uint64_t recorded_ = 0;        // guarded by mu_
};

}  // namespace glmproxy::detail
