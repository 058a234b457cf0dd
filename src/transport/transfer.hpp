#pragma once

// One logical request inside the transport, from submission to its answer, and the messages
// that hand work to the I/O thread. Internal; I/O thread only once submitted.

#include <curl/curl.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "admission/concurrency_limiter.hpp"
#include "glmproxy/error.hpp"
#include "transport/curl_errors.hpp"
#include "transport/transport.hpp"

namespace glmproxy::detail {

struct CallbackEnv;

/// Where a transfer is. The transitions (the driver carries them out):
///   Queued -> Waiting (taken in by the I/O thread) -> OnWire (admitted: holds a pool slot and
///   its model's slot) -> Backoff (a retryable failure) -> Waiting -> ... -> Done;
///   OnWire -> ReadingOut (a stream answered while its transfer stays on the wire: cancelled, or
///   finished at its end marker; its slots were given back) -> Done.
enum class TransferState : std::uint8_t { Queued, Waiting, OnWire, Backoff, ReadingOut, Done };

/// Whether a stream's body goes to its sink: undecided until the status is known.
enum class SinkState : std::uint8_t { Undecided, Active, Unused };

struct Transfer {
  using Clock = std::chrono::steady_clock;

  Transfer() = default;
  Transfer(const Transfer&) = delete;
  Transfer& operator=(const Transfer&) = delete;
  ~Transfer() {
    if (slist != nullptr) curl_slist_free_all(slist);
  }

  HttpExchange ex;
  TransferCallback on_done;  ///< empty once answered
  TransferState state = TransferState::Queued;
  int attempts = 0;
  Clock::time_point deadline;        ///< one deadline across all attempts
  Clock::time_point admit_deadline;  ///< while Waiting
  Clock::time_point retry_at;        ///< while in Backoff
  Clock::time_point queued_at;       ///< joined the admission queue (acquire wait)
  /// A keep-alive or warm-up HEAD of the transport's own: not in metrics, not reported to the
  /// circuit breaker.
  bool probe = false;
  std::optional<std::chrono::milliseconds> total_timeout;  ///< instead of TOTAL_TIMEOUT_MS
  // Upstream protection.
  std::string host;  ///< scheme://host[:port] of ex.url: the breaker's key
  /// Its model's lease while this attempt holds one (AdmissionQueue: granted on admission,
  /// emptied when given back, so it is given back once).
  std::optional<ConcurrencyLease> lease;
  int free_retries = 0;      ///< attempts answered "too many at once" (not counted)
  std::string last_failure;  ///< why the attempt before a backoff failed (a later Timeout)

  // The attempt on the wire (reset by reset_attempt()).
  CURL* easy = nullptr;
  curl_slist* slist = nullptr;  ///< the request's own headers, built once
  CallbackEnv* env = nullptr;   ///< what curl's callbacks read and count
  Clock::time_point attempt_start;
  /// Set once the request is on its way (curl's pre-transfer time), so it does not count the
  /// connect phase, which has its own timeout.
  std::optional<Clock::time_point> first_byte_deadline;
  bool got_response = false;
  long status = 0;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  std::optional<Error> abort_error;  ///< why the I/O thread stopped this attempt itself
  char errbuf[CURL_ERROR_SIZE] = {};
  std::size_t header_bytes = 0;
  std::size_t upload_offset = 0;  ///< chunked upload of a large request body
  // Streams.
  SinkState sink_state = SinkState::Undecided;
  Clock::time_point last_rx;  ///< last byte received (idle timeout)
  /// ReadingOut over HTTP/1.1: until when the rest is read (and thrown away) so the connection
  /// can be reused; unset when the transfer is being closed instead.
  std::optional<Clock::time_point> drain_deadline;
  std::size_t drained = 0;
  bool finished_early = false;  ///< resolved at its end marker, read out or closed after

  /// Read out (a cancelled or finished HTTP/1.1 stream) rather than being closed.
  bool draining() const noexcept {
    return state == TransferState::ReadingOut && drain_deadline.has_value();
  }

  void reset_attempt(Clock::time_point now) {
    got_response = false;
    status = 0;
    headers.clear();
    body.clear();
    abort_error.reset();
    errbuf[0] = '\0';
    attempt_start = now;
    first_byte_deadline.reset();
    sink_state = SinkState::Undecided;
    last_rx = now;
    drain_deadline.reset();
    drained = 0;
    upload_offset = 0;
    header_bytes = 0;
    finished_early = false;
  }
};

using TransferPtr = std::unique_ptr<Transfer>;

/// What a total-timeout message of `t` names (`configured`: GLMPROXY_TOTAL_TIMEOUT_MS).
inline TotalTimeout total_timeout_of(const Transfer& t, std::chrono::milliseconds configured) {
  return {.own_bound = t.total_timeout,
          .configured = configured,
          .attempts = t.attempts,
          .last_failure = t.last_failure};
}

/// What a submitting thread hands the I/O thread: a transfer to carry out, a task to run there
/// (Transport::post), or an answer to give there (Transport::fail).
struct PostedTask {
  std::function<void()> task;
};
struct PresetFailure {
  Error error;
  TransferCallback on_done;
};
using Submission = std::variant<TransferPtr, PostedTask, PresetFailure>;

}  // namespace glmproxy::detail
