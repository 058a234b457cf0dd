#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>

#include "glmproxy/export.hpp"

namespace glmproxy {

/// Counters of one ProxyClient since it was created, read with ProxyClient::metrics(), with
/// the recent window's rates and percentiles, the connection pool and the process.
/// Counters are read one by one without a global lock: while requests run, related numbers
/// may be off by the requests in between.
///
/// Thread safety: thread-compatible (a plain value).
struct GLMPROXY_API MetricsSnapshot {
  /// The response cache (CACHE_ENABLED).
  struct Cache {
    std::uint64_t hits = 0, misses = 0, stores = 0;
    std::uint64_t evictions = 0;    ///< removed to keep CACHE_MAX_SIZE / the byte budget
    std::uint64_t expirations = 0;  ///< found older than CACHE_TTL_MS
    std::size_t entries = 0, bytes = 0;
  } cache;

  /// Single-flight: identical requests in flight at once.
  struct Coalescing {
    std::uint64_t leaders = 0;  ///< requests that made the upstream call for their group
    std::uint64_t joined = 0;   ///< requests answered by another request's upstream call
  } coalescing;

  /// The batching queue (BATCHING_ENABLED).
  struct Batching {
    std::uint64_t batches = 0;           ///< batches sent
    std::uint64_t batched_requests = 0;  ///< requests that went out in them
    std::uint64_t upstream_calls = 0;    ///< upstream calls those batches made
    std::uint64_t calls_saved = 0;       ///< batched_requests - upstream_calls (measured)
    std::uint64_t queue_full = 0;        ///< requests refused with QueueFull
    std::size_t queued = 0;              ///< waiting for their batch now
    std::size_t outstanding = 0;         ///< waiting, or sent and not yet answered (the
                                         ///< number BATCH_MAX_QUEUE_SIZE bounds)
    double mean_batch_size = 0;          ///< batched_requests / batches
  } batching;

  /// Stream buffers (STREAM_BUFFER_POOL_ENABLED).
  struct Buffers {
    std::uint64_t hits = 0, misses = 0, in_use = 0;
  } buffers;

  /// The requests of the last METRICS_RETENTION_MS (in whole METRICS_AGGREGATION_INTERVAL_MS
  /// steps): rates and latency percentiles of recent traffic. Zero with METRICS_ENABLED=false.
  struct Window {
    double seconds = 0;  ///< how long the window is
    std::uint64_t requests = 0, errors = 0, cache_hits = 0;
    double requests_per_second = 0;
    double error_rate = 0;                      ///< errors / requests
    double cache_hit_rate = 0;                  ///< cache hits / requests
    double p50_ms = 0, p95_ms = 0, p99_ms = 0;  ///< request latency (log-linear buckets: each
                                                ///< within 25% above the true value)
  } window;

  /// Requests since the client was created, by how they ended (zero with
  /// METRICS_ENABLED=false). `ok` includes requests answered by an identical request's call.
  struct Requests {
    std::uint64_t total = 0, ok = 0, cache_hits = 0, errors = 0;
    std::uint64_t prompt_tokens = 0, completion_tokens = 0;  ///< as the upstream reported them
    /// Parts of those: prompt tokens read from / written to the provider's prompt cache
    /// (Usage::cached_prompt_tokens, Usage::cache_creation_input_tokens), completion tokens
    /// spent thinking (Usage::reasoning_tokens).
    std::uint64_t cached_prompt_tokens = 0, cache_creation_tokens = 0, reasoning_tokens = 0;
    std::map<std::string, std::uint64_t> errors_by_code;  ///< to_string(ErrorCode) -> count,
                                                          ///< codes seen only
  } requests;

  /// The connection pool (POOL_MAX_CONNECTIONS), as the I/O thread last saw it.
  struct Pool {
    int max_connections = 0;
    int in_use = 0;           ///< requests on the wire, each holding a connection slot
    int idle = 0;             ///< open connections carrying no request
    int open = 0;             ///< connections open now
    std::size_t waiting = 0;  ///< requests waiting for a slot (at most POOL_ACQUIRE_TIMEOUT)
    std::uint64_t connections_opened = 0;  ///< since the client was created
    double utilisation = 0;                ///< in_use / max_connections
    std::uint64_t acquired = 0;            ///< slots handed out (METRICS_ENABLED)
    double acquire_wait_avg_ms = 0, acquire_wait_p99_ms = 0;  ///< time spent waiting for them
  } pool;

  /// HTTP traffic to the upstream.
  struct Upstream {
    std::uint64_t attempts = 0;                        ///< HTTP requests sent, retries included
    std::uint64_t retries = 0;                         ///< attempts after the first
    std::uint64_t tls_handshakes = 0;                  ///< new connections, TLS handshake done
    std::uint64_t bytes_sent = 0, bytes_received = 0;  ///< headers and bodies (METRICS_ENABLED)
  } upstream;

  /// Protecting the upstream account: the per-model concurrency limits (AIMD) and the circuit
  /// breaker per upstream host (docs/tenants.md, "Upstream protection").
  struct Admission {
    std::uint64_t concurrency_decreases = 0;  ///< times a model's limit was halved (429/1302)
    std::uint64_t breaker_opened = 0;         ///< times a host's breaker opened (reopenings after a
                                              ///< failed probe included)
    std::uint64_t breaker_rejections = 0;     ///< requests failed fast by an open breaker
    int model_concurrency_max = 0;            ///< each model's starting and highest limit
                                    ///< (GLMPROXY_MODEL_CONCURRENCY, or POOL_MAX_CONNECTIONS)
    /// Models held below model_concurrency_max, with their limit now; a model not listed is at
    /// the max.
    std::map<std::string, int> model_limits;
  } admission;

  /// The whole process the client lives in (Linux /proc and getrusage).
  struct Process {
    std::uint64_t rss_bytes = 0, peak_rss_bytes = 0;
    double cpu_seconds = 0;           ///< user + system, since the process started
    double cpu_percent = 0;           ///< over the last METRICS_AGGREGATION_INTERVAL_MS or more
                                      ///< (100 = one core busy; the first reading covers the
                                      ///< time since the client was created)
    double cpu_interval_seconds = 0;  ///< the interval cpu_percent covers
  } process;

  /// Every field as one JSON object ({"cache": {...}, "coalescing": {...}, "batching": {...},
  /// "buffers": {...}, "upstream_requests": n, "window": {...}, "requests": {...},
  /// "pool": {...}, "upstream": {...}, "admission": {..., "model_limits": {model: limit}},
  /// "process": {...}}).
  std::string to_json() const;

  /// Chat, stream and embedding calls handed to the transport (each may take several attempts;
  /// send() is not counted).
  std::uint64_t upstream_requests = 0;
};

/// What goes on inside one ProxyClient beyond MetricsSnapshot: its I/O thread's loop, curl
/// handle reuse, body reads, cancelled streams, the tenant key file. For tests and tuning;
/// fields may be added. Read with ProxyClient::diagnostics(). Counters count since the client
/// was created; the pool's gauges are as its I/O thread last saw them. Read one by one without
/// a global lock, like MetricsSnapshot.
///
/// Thread safety: thread-compatible (a plain value).
struct ClientDiagnostics {
  // The connection pool (POOL_MAX_CONNECTIONS).
  int in_flight = 0;         ///< transfers on the wire, each holding a connection slot
  int reading_out = 0;       ///< answered streams still on the wire (HTTP/1.1 read-out), each
                             ///< on a connection but holding no slot
  std::size_t waiting = 0;   ///< transfers waiting for a slot (POOL_ACQUIRE_TIMEOUT)
  int open_connections = 0;  ///< sockets open, in use or idle
  std::uint64_t connections_opened = 0;
  std::uint64_t tls_handshakes = 0;  ///< new connections that completed a TLS handshake
                                     ///< (keep-alive probes' included)

  // The I/O thread (docs/transport.md, "Threads").
  std::uint64_t loop_turns = 0;            ///< turns of the I/O thread's loop
  std::uint64_t wakeups = 0;               ///< wake-ups of that loop by submitting threads
  std::uint64_t easy_handles_created = 0;  ///< curl easy handles made (the rest were reused)

  // Bodies.
  std::uint64_t body_reads = 0;         ///< response body pieces received (curl write callbacks)
  std::uint64_t upload_reads = 0;       ///< request body chunks sent (STREAM_REQUEST_CHUNK_SIZE)
  std::uint64_t streams_cancelled = 0;  ///< streams the caller cancelled
  std::uint64_t cancelled_connections_kept = 0;  ///< of those, drained to their end so that
                                                 ///< the connection went back to the pool

  // Upstream attempts (the transport's own keep-alive probes not counted).
  std::uint64_t attempts = 0;  ///< HTTP requests sent: first attempts and retries
  std::uint64_t retries = 0;   ///< attempts after the first

  // Upstream protection (docs/tenants.md, "Upstream protection").
  std::uint64_t concurrency_decreases = 0;  ///< per-model limits halved after 429/1302
  std::uint64_t breaker_opened = 0;         ///< times a host's circuit breaker opened
  std::uint64_t breaker_rejections = 0;     ///< requests failed fast by an open breaker

  // Stream buffers (STREAM_BUFFER_POOL_ENABLED), all tiers.
  std::uint64_t buffer_hits = 0;     ///< buffers taken from the pool's free lists
  std::uint64_t buffer_misses = 0;   ///< buffers that had to be allocated
  std::uint64_t buffers_in_use = 0;  ///< handed out and not yet returned

  // The tenant key file (APIKEYS_FILE; 0 without one).
  std::uint64_t key_file_reads = 0;   ///< times the file was read (open and lookups)
  std::uint64_t key_file_writes = 0;  ///< usage written back (atomic replaces)
};

}  // namespace glmproxy
