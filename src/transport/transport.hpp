#pragma once

// The transport: one libcurl multi handle, driven by one thread at a time: the transport's I/O
// thread, or a blocking caller that found it idle (lead()). Other threads hand transfers over
// through a queue and a wake-up; only the driver touches curl handles. Made of
// parts with one job each (docs/transport.md, How it is built): driver.hpp names them.
// Admission bounds transfers on the wire to POOL_MAX_CONNECTIONS; the rest wait at most
// POOL_ACQUIRE_TIMEOUT. Transient failures are retried with full-jitter backoff within one
// overall deadline, never once a response has been received.

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "buffer/buffer_pool.hpp"
#include "core/histogram.hpp"
#include "glmproxy/config.hpp"
#include "glmproxy/error.hpp"
#include "glmproxy/request.hpp"
#include "protocol/body_sink.hpp"
#include "transport/transfer_marks.hpp"

struct curl_slist;

namespace glmproxy::detail {

/// Request headers built once into curl's list and shared by every exchange that sends exactly
/// them (a client's constant headers), instead of a list per request.
///
/// Thread safety: immutable once made; curl only reads it.
class SharedHeaders {
 public:
  /// `headers` as "Name: value" lines; "Expect:" is added (no 100-continue round trip).
  static std::shared_ptr<const SharedHeaders> make(const std::vector<std::string>& headers);
  ~SharedHeaders();
  SharedHeaders(const SharedHeaders&) = delete;
  SharedHeaders& operator=(const SharedHeaders&) = delete;
  curl_slist* list() const noexcept { return list_; }

 private:
  SharedHeaders() = default;
  curl_slist* list_ = nullptr;
};

/// What one logical request sends (each attempt sends the same).
struct HttpExchange {
  std::string method = "POST";
  std::string url;
  std::vector<std::string> headers;  ///< "Name: value"; ignored when shared_headers is set
  std::shared_ptr<const SharedHeaders> shared_headers;  ///< all of the request's headers
  /// false: of the response headers keep only those the client reads (content-type,
  /// retry-after, retry-after-ms), saving a copy of every other one per request.
  bool keep_all_headers = true;
  std::string body;
  Protocol protocol = Protocol::OpenAI;  ///< for reading error bodies
  std::string model;  ///< per-model concurrency limit (AIMD); "" = none (send(), HEAD probes)
  bool retry_on_status = true;  ///< false: any HTTP status is final (pass-through)
  /// Set for streams: a 2xx body goes here as it arrives instead of into HttpResult::body
  /// (other statuses are still buffered, for the error). The exchange is retried only while
  /// sink->delivered() is false; an idle gap longer than GLMPROXY_STREAM_IDLE_TIMEOUT_MS ends it.
  std::shared_ptr<BodySink> sink;
  /// The largest decoded body accepted; 0 = GLMPROXY_MAX_RESPONSE_BYTES (a merged embeddings
  /// call allows that much per request it answers).
  std::size_t max_response_bytes = 0;
  /// Set to have the transport fill in where the time went (profiling).
  std::shared_ptr<TransferMarks> marks;
};

/// The final HTTP answer of an exchange.
struct HttpResult {
  int status = 0;
  std::vector<std::pair<std::string, std::string>> headers;  ///< names lower-cased
  std::string body;
  int attempts = 0;
};

/// Counters of one Transport (approximate while it runs).
struct TransportStats {
  BufferPoolStats buffers;
  std::uint64_t upload_reads = 0;  ///< read-callback calls sending chunked request bodies
  std::uint64_t body_reads = 0;    ///< write-callback calls (response body pieces received)
  // The loop (docs/transport.md, Threads).
  std::uint64_t loop_turns = 0;  ///< turns of the loop, by the I/O thread or a leading caller
  std::uint64_t wakeups = 0;     ///< sleeping drivers woken by submitting threads (the parked
                                 ///< I/O thread, or curl_multi_wakeup of a poll)
  std::uint64_t easy_handles_created = 0;  ///< curl_easy_init calls (the rest reused a handle)
  std::uint64_t streams_cancelled = 0;
  std::uint64_t cancelled_connections_kept = 0;  ///< cancelled streams drained to their end,
                                                 ///< so the connection went back to the pool
  std::uint64_t concurrency_decreases = 0;       ///< per-model limits halved after 429/1302
  std::uint64_t breaker_opened = 0;              ///< times a circuit breaker opened
  std::uint64_t breaker_rejections = 0;          ///< requests failed fast by an open breaker
  int model_concurrency_max = 0;                 ///< each model's starting and highest limit
  std::map<std::string, int> model_limits;       ///< models held below that max: their limit now
  // The pool, as last seen by the I/O thread.
  int in_flight = 0;         ///< transfers on the wire, each holding a connection slot
  int reading_out = 0;       ///< answered streams still on the wire (HTTP/1.1 read-out), each
                             ///< on a connection but holding no slot
  std::size_t waiting = 0;   ///< transfers waiting for a slot (POOL_ACQUIRE_TIMEOUT)
  int open_connections = 0;  ///< sockets curl holds open, in use or idle
  std::uint64_t connections_opened = 0;
  std::uint64_t tls_handshakes = 0;  ///< new connections that completed a TLS handshake
                                     ///< (keep-alive probes' included, like connections_opened)
  // Not counting the transport's own keep-alive probes.
  std::uint64_t attempts = 0;  ///< HTTP requests sent: first attempts and retries (always)
  std::uint64_t retries = 0;   ///< attempts after the first (backoffs waited out) (always)
  std::uint64_t bytes_sent = 0, bytes_received = 0;  ///< headers and bodies, as on the wire
                                                     ///< (METRICS_ENABLED)
  HistogramSnapshot acquire_wait;  ///< from joining the admission queue to getting a slot
                                   ///< (METRICS_ENABLED)
};

/// The first header called `name` (lower-case) in `headers`, or "".
inline std::string_view find_header(const std::vector<std::pair<std::string, std::string>>& headers,
                                    std::string_view name) noexcept {
  for (const auto& [k, v] : headers) {
    if (k == name) return v;
  }
  return {};
}

/// Runs on the driver (the I/O thread or a leading caller), exactly once per submitted exchange.
using TransferCallback = std::function<void(Result<HttpResult>)>;

/// Thread safety: thread-safe (submit from any thread; callbacks on the driver).
class Transport {
 public:
  static Result<std::unique_ptr<Transport>> create(const Config& config);
  ~Transport();  ///< stop(), then frees curl's handles

  /// Resolves everything still queued or in flight, on the I/O thread (what its callbacks submit
  /// meanwhile too), and joins it. The transport stays usable as an object: later submissions
  /// resolve at once with ShuttingDown on the submitting thread. Idempotent; not from the I/O
  /// thread.
  void stop();

  void submit(HttpExchange exchange, TransferCallback on_done);
  /// For a blocking call: submits like submit(), and when no thread drives the loop (the I/O
  /// thread is parked: nothing else is on the wire), this thread drives it until `enough()`
  /// says so (its answer, or its stream's first events, arrived), running curl's callbacks and
  /// every answer that comes meanwhile, then hands the loop back. A lone blocking request so
  /// makes no thread hand-off. Returns at once when another thread drives: the answer comes from
  /// there. `enough` is asked on this thread only. Not from the driver (on_io_thread()).
  ///
  /// With `lend` (a stream's consumer): if `(*lend)()` is true when it stops and the caller's
  /// own stream is all that is left on the wire, the loop is lent rather than handed to the I/O
  /// thread: the caller runs its on_event, then drives again with lead_again(). While lent, any
  /// submission wakes the I/O thread, which then drives everything, that stream included.
  void lead(HttpExchange exchange, TransferCallback on_done, const std::function<bool()>& enough,
            const std::function<bool()>* lend = nullptr);
  /// Drives the loop as lead() does if nobody drives it (a consumer whose stream was lent, or
  /// whose driver has finished); false at once if another thread drives it.
  bool lead_again(const std::function<bool()>& enough, const std::function<bool()>* lend);
  /// Hands several exchanges over at once: they start in the same loop iteration.
  void submit_batch(std::vector<std::pair<HttpExchange, TransferCallback>> exchanges);
  /// Runs `task` on the driver (at once, if the client is shutting down: on this thread).
  void post(std::function<void()> task);
  /// Resolves `on_done` with `error` on the driver (keeps "callbacks on the driver").
  void fail(Error error, TransferCallback on_done);
  /// This thread drives the loop now (a callback run there: blocking calls would deadlock).
  bool on_io_thread() const noexcept;
  /// A consumer thread asked for a stream to be cancelled (its sink's cancel_requested() is now
  /// true): wakes the I/O thread, which on its next loop turn checks every active stream's sink
  /// and handles each that asks exactly as when on_body() returned Action::Cancel. Any thread.
  void poke() noexcept;
  /// Opens `n` connections to the URL's host by sending `n` concurrent HEAD requests, and waits
  /// for them at most `timeout`. Any HTTP answer counts as a warm connection. The probes are
  /// not counted in the metrics nor reported to the circuit breaker.
  Result<void> warm(const std::string& url, int n, std::chrono::milliseconds timeout);
  TransportStats stats() const noexcept;

  class Impl;

 private:
  explicit Transport(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace glmproxy::detail
