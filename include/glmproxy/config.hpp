#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "glmproxy/error.hpp"
#include "glmproxy/export.hpp"
#include "glmproxy/log.hpp"

namespace glmproxy {

using Milliseconds = std::chrono::milliseconds;

/// Starting points from the tuning guide's profiles; `GLMPROXY_PRESET` selects one in from_env().
enum class Preset { Default, LowLatency, HighThroughput, Development, Edge };

/// "default", "low-latency", "high-throughput", "development", "edge".
GLMPROXY_API std::string_view to_string(Preset preset) noexcept;
/// Accepts the names above case-insensitively, with '-' or '_' (e.g. "LOW_LATENCY").
GLMPROXY_API std::optional<Preset> parse_preset(std::string_view name) noexcept;

/// Where requests go and who they are sent as.
struct UpstreamConfig {
  std::string api_key;                                                ///< ZAI_API_KEY
  std::string openai_base_url = "https://api.z.ai/api/paas/v4";       ///< ZAI_API_BASE
  std::string anthropic_base_url = "https://api.z.ai/api/anthropic";  ///< ANTHROPIC_API_BASE
  std::string default_model = "glm-4.7";                              ///< DEFAULT_MODEL
  std::string anthropic_version = "2023-06-01";  ///< GLMPROXY_ANTHROPIC_VERSION
  std::string embedding_model = "embedding-3";   ///< GLMPROXY_EMBEDDING_MODEL: embed() default
  /// GLMPROXY_CA_FILE: PEM bundle of the certificate authorities trusted for https upstreams
  /// instead of the system's; empty = the system store. Verification is always on.
  std::string ca_file;
  /// GLMPROXY_CA_PATH: directory of hashed CA certificates (`openssl rehash`), searched as well
  /// as ca_file; empty = none.
  std::string ca_path;
  /// GLMPROXY_PROXY: the proxy every request goes through, as a URL: http://, https://,
  /// socks4://, socks4a://, socks5:// or socks5h:// (the proxy resolves names), optionally with
  /// user:pass@; "" = direct. The transport always hands this to libcurl, so libcurl's own
  /// reading of http_proxy/https_proxy/all_proxy never applies: a Config built in code uses no
  /// proxy unless it says so. from_env() reads the standard variables into it (see
  /// docs/configuration.md).
  std::string proxy;
  /// GLMPROXY_NO_PROXY: hosts reached directly despite `proxy`, in libcurl's NOPROXY form
  /// (comma-separated names, domains matching their subdomains, IP addresses or CIDR; "*" = all).
  std::string no_proxy;
  /// Where from_env() found `proxy` ("GLMPROXY_PROXY", "https_proxy", ...), for describe();
  /// "" when set in code. Not a variable of its own.
  std::string proxy_source;
};

/// Deadlines. A request that passes one fails with ErrorCode::Timeout naming which.
struct TimeoutConfig {
  Milliseconds connect{10'000};       ///< GLMPROXY_CONNECT_TIMEOUT_MS: TCP + TLS handshake
  Milliseconds first_byte{300'000};   ///< GLMPROXY_FIRST_BYTE_TIMEOUT_MS: request sent -> first
                                      ///< response byte (thinking models can take minutes)
  Milliseconds stream_idle{120'000};  ///< GLMPROXY_STREAM_IDLE_TIMEOUT_MS: silence between chunks
  Milliseconds total{600'000};        ///< GLMPROXY_TOTAL_TIMEOUT_MS: one deadline across all
                                      ///< attempts of a request, retries and backoff included
};

/// Retries of transient failures (408, 409, 429, 5xx, connection failures), full-jitter
/// exponential backoff, never after the first response byte reached the caller.
struct RetryConfig {
  int max_attempts = 3;                  ///< GLMPROXY_MAX_ATTEMPTS: 1 = no retries
  Milliseconds base_delay{500};          ///< GLMPROXY_RETRY_BASE_DELAY_MS
  Milliseconds max_delay{8'000};         ///< GLMPROXY_RETRY_MAX_DELAY_MS: backoff cap
  Milliseconds retry_after_cap{60'000};  ///< GLMPROXY_RETRY_AFTER_MAX_MS: longest Retry-After
                                         ///< honoured; a longer one fails with retry_after set
};

/// The connection pool (libcurl multi) and its admission control.
struct PoolConfig {
  int min_connections = 2;              ///< POOL_MIN_CONNECTIONS: kept open when idle
  int max_connections = 10;             ///< POOL_MAX_CONNECTIONS: requests on the wire at once
  bool warm = false;                    ///< POOL_WARM: open min_connections in create()
  Milliseconds acquire_timeout{5'000};  ///< POOL_ACQUIRE_TIMEOUT: longest wait for a free slot
  bool disabled = false;                ///< DISABLE_CONNECTION_POOL: fresh connection per request
  Milliseconds max_idle{30'000};        ///< GLMPROXY_POOL_MAX_IDLE_MS: connections idle longer
                                        ///< are not reused
};

/// Protecting the upstream account: a per-model concurrency limit that adapts (AIMD) to the
/// account's real allowance, and a circuit breaker per upstream host.
struct AdmissionConfig {
  /// GLMPROXY_MODEL_CONCURRENCY: starting and highest number of requests on the wire per model;
  /// 0 = POOL_MAX_CONNECTIONS. Halved on a 429 concurrency answer (Z.AI 1302), grown back by one
  /// step per GLMPROXY_AIMD_INCREASE_INTERVAL_MS while requests succeed.
  int model_concurrency = 0;
  Milliseconds increase_interval{5'000};  ///< GLMPROXY_AIMD_INCREASE_INTERVAL_MS
  /// GLMPROXY_BREAKER_FAILURES: consecutive failures (connection failures, timeouts, 5xx) within
  /// GLMPROXY_BREAKER_WINDOW_MS that open an upstream's breaker; 0 = no breaker.
  int breaker_failures = 5;
  Milliseconds breaker_window{30'000};    ///< GLMPROXY_BREAKER_WINDOW_MS
  Milliseconds breaker_cooldown{10'000};  ///< GLMPROXY_BREAKER_COOLDOWN_MS: open this long,
                                          ///< then one probe request is let through
};

/// The response cache.
struct CacheConfig {
  bool enabled = false;               ///< CACHE_ENABLED
  Milliseconds ttl{300'000};          ///< CACHE_TTL_MS: absolute, from insertion
  std::size_t max_entries = 1000;     ///< CACHE_MAX_SIZE
  std::size_t max_bytes = 64u << 20;  ///< GLMPROXY_CACHE_MAX_BYTES: byte budget of all entries
  /// GLMPROXY_COALESCE_ENABLED: identical requests in flight at once share one upstream call
  /// (single-flight), with or without the cache. Identical includes temperature: callers that
  /// want several samples of one prompt send them with CachePolicy::Bypass.
  bool coalesce = true;
};

/// The batching queue.
struct BatchConfig {
  bool enabled = false;               ///< BATCHING_ENABLED
  Milliseconds window{50};            ///< BATCH_WINDOW_MS: opens at a batch's first request
  std::size_t max_size = 10;          ///< BATCH_MAX_SIZE: flush at this many requests
  std::size_t max_queue_size = 1000;  ///< BATCH_MAX_QUEUE_SIZE: beyond it, QueueFull
};

/// Request upload and response streaming.
struct StreamConfig {
  std::size_t request_chunk_size = 32'768;   ///< STREAM_REQUEST_CHUNK_SIZE: larger request
                                             ///< bodies are uploaded in chunks of this size
  std::size_t response_chunk_size = 32'768;  ///< STREAM_RESPONSE_CHUNK_SIZE: receive buffer
  bool buffer_pool_enabled = true;           ///< STREAM_BUFFER_POOL_ENABLED
  std::size_t max_line_bytes = 1u << 20;     ///< GLMPROXY_SSE_MAX_LINE_BYTES
  std::size_t max_event_bytes = 8u << 20;    ///< GLMPROXY_SSE_MAX_EVENT_BYTES
  /// GLMPROXY_MAX_RESPONSE_BYTES: the largest body of one response after decoding (gzip, br,
  /// zstd), for complete(), send() and embed(), and the largest aggregated reply of stream()
  /// (text, reasoning and tool arguments together). Beyond it: BadResponse naming this knob.
  std::size_t max_response_bytes = 32u << 20;
};

/// Tenant keys (a registry file is optional; without one, requests use UpstreamConfig::api_key).
struct KeysConfig {
  std::string file;                 ///< APIKEYS_FILE: empty = no tenant registry
  std::size_t cache_size = 1000;    ///< APIKEY_CACHE_SIZE
  Milliseconds cache_ttl{300'000};  ///< APIKEY_CACHE_TTL_MS: absolute, from load
};

/// Batched persistence of token usage to the key file.
struct RateLimitConfig {
  Milliseconds batch_interval{5'000};  ///< RATE_LIMIT_BATCH_INTERVAL_MS
  std::size_t max_batch_size = 100;    ///< RATE_LIMIT_MAX_BATCH_SIZE
};

struct MetricsConfig {
  bool enabled = true;                       ///< METRICS_ENABLED
  Milliseconds retention{60'000};            ///< METRICS_RETENTION_MS
  Milliseconds aggregation_interval{1'000};  ///< METRICS_AGGREGATION_INTERVAL_MS
};

struct ProfilingConfig {
  bool enabled = false;          ///< PROFILING_ENABLED
  std::size_t ring_size = 1000;  ///< GLMPROXY_PROFILING_RING_SIZE: requests kept
};

/// The optional admin endpoint. The core library serves nothing: link glmproxy::admin and call
/// glmproxy::admin::AdminServer::start(client), which reads these.
struct AdminConfig {
  bool enabled = false;            ///< GLMPROXY_ADMIN_ENABLED
  std::string host = "127.0.0.1";  ///< GLMPROXY_ADMIN_HOST: a loopback address (127.x, ::1,
                                   ///< localhost)
  int port = 0;                    ///< GLMPROXY_ADMIN_PORT: 0 = any free port
  std::string token;  ///< GLMPROXY_ADMIN_TOKEN: bearer token every request must carry; empty =
                      ///< none (the port is loopback-only either way)
};

/// Everything that tunes a ProxyClient: a plain value, one sub-struct per subsystem.
/// Defaults are the tuning guide's; docs/configuration.md lists every variable.
///
/// Thread safety: thread-compatible (a plain value; copy it freely).
/// Example:
///   auto config = glmproxy::Config::from_env();   // reads POOL_MAX_CONNECTIONS, ...
///   if (!config) { log(config.error().message); return; }
///   config->cache.enabled = true;                  // code may adjust after loading
struct GLMPROXY_API Config {
  UpstreamConfig upstream;
  TimeoutConfig timeouts;
  RetryConfig retry;
  PoolConfig pool;
  AdmissionConfig admission;
  CacheConfig cache;
  BatchConfig batch;
  StreamConfig stream;
  KeysConfig keys;
  RateLimitConfig rate_limit;
  MetricsConfig metrics;
  ProfilingConfig profiling;
  AdminConfig admin;
  /// Where the library's log lines go; empty = nowhere. Not read from the environment.
  LogCallback logger;
  /// Time source for cache TTLs; empty = std::chrono::steady_clock::now. Not read from the
  /// environment (tests inject a clock they can move).
  std::function<std::chrono::steady_clock::time_point()> clock;
  /// Wall-clock time source for token quota windows and the key file's timestamps; empty =
  /// std::chrono::system_clock::now. Not read from the environment (tests move it by hand).
  std::function<std::chrono::system_clock::time_point()> wall_clock;
  LogLevel log_level = LogLevel::Warn;  ///< GLMPROXY_LOG_LEVEL: lowest level passed to logger
  /// GLMPROXY_CALLBACK_THREADS: threads of the client's own callback pool, which runs the
  /// complete_async() callbacks when `callback_executor` is empty (1 - 256). A callback that
  /// takes long holds one of them; the others go on, and so do all transfers.
  int callback_threads = 2;
  /// Runs the complete_async() callbacks instead of the client's pool (then no pool threads are
  /// started). It is called from a library thread with one task per callback and must run that
  /// task exactly once, later, on a thread of its choosing, never inline (inline would be the
  /// client's I/O thread: every other request would wait for the callback). Tasks still owned by
  /// it when the client is destroyed may still run: they hold no reference to the client. If it
  /// throws, the callback runs on a short-lived thread of the library's instead. Not read from
  /// the environment.
  std::function<void(std::function<void()>)> callback_executor;

  /// Reads the process environment: Config::from_env(lookup) with getenv.
  static Result<Config> from_env();

  /// Starts from `GLMPROXY_PRESET` (or the defaults), then applies every variable that `lookup`
  /// returns a non-empty value for. Values are trimmed of surrounding blanks. The exceptions are
  /// GLMPROXY_PROXY and GLMPROXY_NO_PROXY: present at all, even empty, they win ("", "none" or
  /// "direct" = no proxy); absent, the standard https_proxy/HTTPS_PROXY (https base URL) or
  /// http_proxy (http), then all_proxy/ALL_PROXY, and no_proxy/NO_PROXY are read through
  /// `lookup` as libcurl would. Booleans accept
  /// 1/0/true/false/yes/no/on/off in any case; integers are range-checked. All bad values are
  /// reported together in one InvalidConfig error, then validate() runs on the result.
  static Result<Config> from_env(
      const std::function<std::optional<std::string>(std::string_view)>& lookup);

  /// The tuning guide's profile `p`, defaults elsewhere.
  static Config preset(Preset p);

  /// Checks ranges and contradictions (e.g. POOL_MIN_CONNECTIONS > POOL_MAX_CONNECTIONS);
  /// reports every problem in one InvalidConfig error, naming the variables involved.
  Result<void> validate() const;

  /// The effective settings as `NAME=value` lines, the API key redacted to 4 characters + "…",
  /// credentials in URLs (user:pass@) shown as "***@". The proxy line says where it came from:
  /// `GLMPROXY_PROXY=http://***@127.0.0.1:3128 (from https_proxy)` or `GLMPROXY_PROXY= (direct)`.
  std::string describe() const;
};

/// Redacts a secret for messages: its first 4 characters and "…" ("" stays ""). A key of 4
/// characters or fewer becomes "…" alone, so a short key is never shown whole.
GLMPROXY_API std::string redact_key(std::string_view key);

/// Whether `host` names the loopback interface: 127.0.0.0/8 in dotted decimal (four parts of
/// 1 to 3 digits, each at most 255), "::1" or "localhost"; no brackets, no port. The rule
/// Config::validate() applies to GLMPROXY_ADMIN_HOST, and the Host names the admin endpoint
/// answers.
GLMPROXY_API bool is_loopback_host(std::string_view host) noexcept;

}  // namespace glmproxy
