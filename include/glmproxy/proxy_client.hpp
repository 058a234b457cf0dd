#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "glmproxy/config.hpp"
#include "glmproxy/error.hpp"
#include "glmproxy/export.hpp"
#include "glmproxy/keys.hpp"
#include "glmproxy/metrics.hpp"
#include "glmproxy/profiling.hpp"
#include "glmproxy/request.hpp"
#include "glmproxy/response.hpp"

namespace glmproxy {

/// The facade: sends chat requests to the configured upstream through a pooled, admission-
/// controlled libcurl multi handle owned by one I/O thread, with retries of transient failures.
///
/// Thread safety: thread-safe. Any number of threads may call every member at once. User code
/// never runs on the I/O thread: complete_async() callbacks run on the callback executor (the
/// client's GLMPROXY_CALLBACK_THREADS threads, or Config::callback_executor), stream()'s
/// on_event on the thread that called stream(); a slow callback holds up only itself. Either
/// may call the client again, blocking calls included.
/// Destroying the client resolves every request still queued or in flight exactly once
/// (ShuttingDown or Cancelled), runs the callbacks still queued, and joins its threads.
/// Example:
///   auto client = glmproxy::ProxyClient::create(*glmproxy::Config::from_env());
///   glmproxy::ChatRequest request;
///   request.messages = {{"user", "Say hello."}};
///   if (auto reply = client->complete(request)) use(reply->content);
class GLMPROXY_API ProxyClient {
 public:
  /// Validates `config`, starts the I/O thread and the callback threads and, with POOL_WARM,
  /// opens POOL_MIN_CONNECTIONS connections before returning.
  static Result<ProxyClient> create(Config config);

  ProxyClient(ProxyClient&&) noexcept;
  ProxyClient& operator=(ProxyClient&&) noexcept;
  ProxyClient(const ProxyClient&) = delete;
  ProxyClient& operator=(const ProxyClient&) = delete;
  /// Answers every pending request (Cancelled on the wire, ShuttingDown otherwise; callbacks on
  /// the callback executor as always), runs the callbacks still queued, and joins the I/O and
  /// callback threads. Called from one of the client's own callbacks, it hands that shutdown to
  /// a short-lived thread and returns at once.
  ~ProxyClient();

  /// Sends `request` and waits for the answer (retries included). With CACHE_ENABLED a stored
  /// answer comes back at once without touching the network (ChatResponse::from_cache), and
  /// successful answers are stored; identical requests in flight at once share one upstream
  /// call (GLMPROXY_COALESCE_ENABLED), errors included; with BATCHING_ENABLED the request waits
  /// for its batch. `request.cache` overrides the cache and coalescing per request.
  Result<ChatResponse> complete(const ChatRequest& request);

  /// Sends `request`; `on_done` is called exactly once, on the callback executor (the client's
  /// GLMPROXY_CALLBACK_THREADS threads, or Config::callback_executor), with the answer or the
  /// error (also for requests refused before they reach the network, cache hits, QueueFull,
  /// and requests still pending when the client is destroyed), never on the I/O thread nor the
  /// caller's stack. It may call the client again, blocking calls included; while it runs it
  /// holds one callback thread, no transfer. On a moved-from client it gets InvalidArgument on a
  /// short-lived thread of its own. Cache, coalescing and batching as for complete().
  void complete_async(ChatRequest request, std::function<void(Result<ChatResponse>)> on_done);

  /// Sends `request` as a stream ("stream": true) and calls `on_event` with each delta as it
  /// arrives, then returns the whole reply (content, reasoning, tool calls, finish reason,
  /// usage; raw_json stays empty). `on_event` runs on the thread that called stream(), in
  /// order; the I/O thread parses the body meanwhile, so a slow consumer holds up only this
  /// stream (its events wait, bounded by GLMPROXY_MAX_RESPONSE_BYTES). It may call the client
  /// again, blocking calls included; copy what you keep (the event is reused). Returning false
  /// cancels: the call returns Cancelled at once (without waiting for the upstream's next
  /// chunk), its connection slot already free, and the connection is let go (a nearly finished
  /// HTTP/1.1 response is read out so the connection can be reused). An exception from it
  /// cancels too and the call returns Internal.
  /// With CACHE_ENABLED a stream's events are stored and a later identical stream() replays
  /// them through `on_event` on the calling thread (from_cache set). Streams are not coalesced.
  /// A stream is retried (like complete()) only while no event has reached `on_event`. An error
  /// event inside the stream becomes a typed Error (Anthropic overloaded_error is retryable);
  /// silence longer than GLMPROXY_STREAM_IDLE_TIMEOUT_MS ends it with Timeout; a connection
  /// that ends before the end marker gives BadResponse "the stream was cut ...".
  /// Example:
  ///   auto reply = client->stream(request, [](const glmproxy::StreamEvent& e) {
  ///     if (e.type == glmproxy::StreamEvent::Type::Text) std::fwrite(e.text.data(), 1,
  ///                                                                   e.text.size(), stdout);
  ///     return true;
  ///   });
  Result<ChatResponse> stream(const ChatRequest& request,
                              const std::function<bool(const StreamEvent&)>& on_event);

  /// Embeddings for `request.input` (OpenAI POST embeddings on the OpenAI base URL), one vector
  /// per input in order. With BATCHING_ENABLED, requests for the same model and settings that
  /// arrive within one batch window are merged into one upstream call. Cached and coalesced
  /// like complete().
  Result<EmbeddingResponse> embed(const EmbeddingRequest& request);

  /// Counters (cache, coalescing, batching, stream buffers, requests, upstream traffic,
  /// upstream protection: AIMD limit cuts and per-model limits, breaker openings and refusals),
  /// the recent window's rates and latency percentiles, the pool, and the process's RSS and CPU.
  MetricsSnapshot metrics() const;

  /// The client's inner counters (ClientDiagnostics: the I/O thread's loop turns and wake-ups,
  /// curl handles made, body reads, cancelled streams, pool gauges, key file reads and writes),
  /// for tests and tuning; fields may be added. Cheap (relaxed atomic loads, no lock that
  /// requests take); all zero for a moved-from client.
  ClientDiagnostics diagnostics() const noexcept;

  /// PROFILING_ENABLED: the newest GLMPROXY_PROFILING_RING_SIZE requests' phase marks
  /// summarised (avg/p50/p95/p99), with the `slowest` slowest of them. Disabled: an empty
  /// report with `enabled` false.
  ProfilingReport profiling(std::size_t slowest = 10) const;

  /// PROFILING_ENABLED: the newest profile whose request id is `request_id` (the caller's
  /// ChatRequest::request_id, also sent upstream as X-Request-ID, or the "glmproxy-<n>" id the
  /// profiler gave it). nullopt when disabled or no longer in the ring.
  std::optional<RequestProfile> request_profile(std::string_view request_id) const;

  /// Prometheus text exposition (format 0.0.4) of the client's metrics, names prefixed
  /// `glm_proxy_`: requests by API and outcome, errors by code, request-duration and
  /// time-to-first-token histograms (seconds), tokens, upstream calls, cache, coalescing,
  /// batching and stream-buffer counters, upstream attempts, retries and bytes, upstream
  /// protection (limit cuts, per-model limits, breaker openings and refusals), pool gauges and
  /// acquire-wait histogram, process memory and CPU. With METRICS_ENABLED=false the request
  /// families stay at zero.
  std::string prometheus_text() const;

  /// A tenant key's standing (APIKEYS_FILE): its record, tokens used in the rolling 5-hour
  /// window, what remains, lifetime tokens. Unauthorized for an unknown key; InvalidArgument
  /// without a key registry.
  Result<KeyStats> key_stats(std::string_view tenant_key) const;

  /// Forgets the cached record of `tenant_key`: the next request reads the key file again (a
  /// revoked or changed key takes effect at once instead of within APIKEY_CACHE_TTL_MS).
  void invalidate_key(std::string_view tenant_key);

  /// Raw pass-through: `request.path` joined to the protocol's base URL, with the configured
  /// authentication. Any HTTP status is returned as an HttpResponse; only failures to get one
  /// (connection, timeout, pool) are Errors. Connection failures are retried, statuses are not.
  Result<HttpResponse> send(const HttpRequest& request);

  /// The effective configuration (after validation).
  const Config& config() const noexcept;

 private:
  class Impl;
  GLMPROXY_LOCAL explicit ProxyClient(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace glmproxy
