#include "metrics/registry.hpp"

#include <fmt/format.h>

#include <string_view>

namespace glmproxy::detail {

namespace {

constexpr std::string_view kApiNames[] = {"openai", "anthropic", "embeddings"};
constexpr std::string_view kOutcomeNames[] = {"ok", "cache_hit", "error"};
constexpr ErrorCode kErrorCodes[] = {
    ErrorCode::InvalidArgument, ErrorCode::InvalidConfig, ErrorCode::ConnectionFailed,
    ErrorCode::Timeout,         ErrorCode::Cancelled,     ErrorCode::RateLimited,
    ErrorCode::QuotaExceeded,   ErrorCode::Unauthorized,  ErrorCode::Forbidden,
    ErrorCode::UpstreamError,   ErrorCode::BadResponse,   ErrorCode::QueueFull,
    ErrorCode::PoolTimeout,     ErrorCode::ShuttingDown,  ErrorCode::Internal};

// Bucket bounds (seconds) of the exported histograms. Each counts the internal log-linear
// buckets whose upper edge is at or below it.
constexpr double kBounds[] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
                              0.025,  0.05,    0.1,    0.25,  0.5,    1,     2.5,
                              5,      10,      30,     60,    120,    300};

// A label value as the text format writes it: backslash, double quote and line feed escaped.
std::string label_value(std::string_view v) {
  std::string out;
  out.reserve(v.size());
  for (char c : v) {
    if (c == '\\' || c == '"') {
      out += '\\';
      out += c;
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

class Writer {
 public:
  void family(std::string_view name, std::string_view type, std::string_view help) {
    out_ += fmt::format("# HELP glm_proxy_{} {}\n# TYPE glm_proxy_{} {}\n", name, help, name, type);
  }
  void sample(std::string_view name, std::string_view labels, double value) {
    out_ += fmt::format("glm_proxy_{}{}{}{}{} {}\n", name, labels.empty() ? "" : "{", labels,
                        labels.empty() ? "" : "}", "", value);
  }
  void counter(std::string_view name, std::string_view help, double value) {
    family(name, "counter", help);
    sample(name, {}, value);
  }
  void counter(std::string_view name, std::string_view help, std::uint64_t value) {
    counter(name, help, static_cast<double>(value));
  }
  void gauge(std::string_view name, std::string_view help, double value) {
    family(name, "gauge", help);
    sample(name, {}, value);
  }
  void histogram(std::string_view name, std::string_view labels, const HistogramSnapshot& h) {
    const std::string sep = labels.empty() ? "" : ",";
    std::uint64_t cumulative = 0;
    int next = 0;
    for (double bound : kBounds) {
      const auto limit = static_cast<std::uint64_t>(bound * 1e6);
      while (next < HistogramSnapshot::kBuckets && HistogramSnapshot::upper_us(next) <= limit) {
        cumulative += h.counts[static_cast<std::size_t>(next++)];
      }
      out_ += fmt::format("glm_proxy_{}_bucket{{{}{}le=\"{}\"}} {}\n", name, labels, sep, bound,
                          cumulative);
    }
    // +Inf and _count from the buckets themselves: a snapshot taken while another thread
    // records can hold a bucket increment whose count increment is not in yet.
    std::uint64_t all = 0;
    for (std::uint64_t c : h.counts) all += c;
    out_ += fmt::format("glm_proxy_{}_bucket{{{}{}le=\"+Inf\"}} {}\n", name, labels, sep, all);
    out_ += fmt::format("glm_proxy_{}_sum{}{}{} {}\n", name, labels.empty() ? "" : "{", labels,
                        labels.empty() ? "" : "}", static_cast<double>(h.sum_us) / 1e6);
    out_ += fmt::format("glm_proxy_{}_count{}{}{} {}\n", name, labels.empty() ? "" : "{", labels,
                        labels.empty() ? "" : "}", all);
  }
  std::string take() { return std::move(out_); }

 private:
  std::string out_;
};

}  // namespace

std::string_view api_name(Api api) noexcept { return kApiNames[static_cast<std::size_t>(api)]; }

std::string_view outcome_name(Outcome outcome) noexcept {
  return kOutcomeNames[static_cast<std::size_t>(outcome)];
}

void Metrics::request_done(Api api, Outcome outcome, const Error* error,
                           std::chrono::microseconds latency) noexcept {
  if (!enabled_) return;
  requests_[index(api, outcome)].fetch_add(1, std::memory_order_relaxed);
  if (error != nullptr) {
    const auto code = static_cast<std::size_t>(error->code);
    if (code < kCodes) errors_[code].fetch_add(1, std::memory_order_relaxed);
  }
  latency_[static_cast<std::size_t>(api)].record(latency);
  recent_.record(now(), latency, error != nullptr, outcome == Outcome::CacheHit);
}

void Metrics::tokens(const Usage& usage) noexcept {
  if (!enabled_) return;
  const auto add = [](std::atomic<std::uint64_t>& counter, std::int64_t n) {
    if (n > 0) counter.fetch_add(static_cast<std::uint64_t>(n), std::memory_order_relaxed);
  };
  add(prompt_tokens_, usage.prompt_tokens);
  add(completion_tokens_, usage.completion_tokens);
  add(cached_prompt_tokens_, usage.cached_prompt_tokens);
  add(cache_creation_tokens_, usage.cache_creation_input_tokens);
  add(reasoning_tokens_, usage.reasoning_tokens);
}

void Metrics::time_to_first_token(std::chrono::microseconds d) noexcept {
  if (enabled_) ttft_.record(d);
}

void Metrics::fill(MetricsSnapshot& m) const {
  auto& r = m.requests;
  for (std::size_t a = 0; a < kApis; ++a) {
    const std::uint64_t ok = requests_[a * kOutcomes].load(std::memory_order_relaxed);
    const std::uint64_t hits = requests_[a * kOutcomes + 1].load(std::memory_order_relaxed);
    const std::uint64_t errors = requests_[a * kOutcomes + 2].load(std::memory_order_relaxed);
    r.ok += ok;
    r.cache_hits += hits;
    r.errors += errors;
  }
  r.total = r.ok + r.cache_hits + r.errors;
  r.prompt_tokens = prompt_tokens();
  r.completion_tokens = completion_tokens();
  r.cached_prompt_tokens = cached_prompt_tokens();
  r.cache_creation_tokens = cache_creation_tokens();
  r.reasoning_tokens = reasoning_tokens();
  for (ErrorCode code : kErrorCodes) {
    if (const std::uint64_t n = errors(code); n > 0)
      r.errors_by_code[std::string(to_string(code))] = n;
  }
}

std::string Metrics::prometheus_text(const MetricsSnapshot& m,
                                     const HistogramSnapshot& acquire_wait) const {
  Writer w;
  w.family("requests_total", "counter", "Requests resolved, by API and outcome.");
  for (std::size_t a = 0; a < kApis; ++a) {
    for (std::size_t o = 0; o < kOutcomes; ++o) {
      w.sample("requests_total",
               fmt::format("api=\"{}\",outcome=\"{}\"", kApiNames[a], kOutcomeNames[o]),
               static_cast<double>(requests_[a * kOutcomes + o].load(std::memory_order_relaxed)));
    }
  }
  w.family("errors_total", "counter", "Requests that ended in an error, by error code.");
  for (ErrorCode code : kErrorCodes) {
    w.sample("errors_total", fmt::format("code=\"{}\"", to_string(code)),
             static_cast<double>(
                 errors_[static_cast<std::size_t>(code)].load(std::memory_order_relaxed)));
  }
  w.family("request_duration_seconds", "histogram",
           "Time from the call to its answer (cache hits included), by API.");
  for (std::size_t a = 0; a < kApis; ++a) {
    w.histogram("request_duration_seconds", fmt::format("api=\"{}\"", kApiNames[a]),
                latency_[a].snapshot());
  }
  w.family("time_to_first_token_seconds", "histogram",
           "Time from a stream() call to its first text or reasoning delta.");
  w.histogram("time_to_first_token_seconds", {}, ttft_.snapshot());
  w.family("tokens_total", "counter", "Tokens the upstream reported, by kind.");
  w.sample("tokens_total", "kind=\"prompt\"",
           static_cast<double>(prompt_tokens_.load(std::memory_order_relaxed)));
  w.sample("tokens_total", "kind=\"completion\"",
           static_cast<double>(completion_tokens_.load(std::memory_order_relaxed)));
  // Parts of the prompt and completion counts above, so families of their own (a sum over
  // tokens_total's kinds stays the tokens billed).
  w.counter("cached_prompt_tokens_total",
            "Of the prompt tokens, those read from the provider's prompt cache.",
            cached_prompt_tokens());
  w.counter("cache_creation_tokens_total",
            "Of the prompt tokens, those written to the provider's prompt cache (Anthropic).",
            cache_creation_tokens());
  w.counter("reasoning_tokens_total", "Of the completion tokens, those spent thinking.",
            reasoning_tokens());
  w.counter("upstream_calls_total", "Calls handed to the transport (each may take retries).",
            m.upstream_requests);
  w.counter("cache_hits_total", "Answers served from the response cache.", m.cache.hits);
  w.counter("cache_misses_total", "Response cache lookups that missed.", m.cache.misses);
  w.counter("cache_evictions_total", "Entries evicted to keep the cache's budgets.",
            m.cache.evictions);
  w.counter("cache_expirations_total", "Entries found older than CACHE_TTL_MS.",
            m.cache.expirations);
  w.gauge("cache_entries", "Entries in the response cache.", static_cast<double>(m.cache.entries));
  w.gauge("cache_bytes", "Estimated bytes held by the response cache.",
          static_cast<double>(m.cache.bytes));
  w.counter("coalesced_requests_total", "Requests answered by an identical request's call.",
            m.coalescing.joined);
  w.counter("batches_total", "Batches sent by the batching queue.", m.batching.batches);
  w.counter("batched_requests_total", "Requests sent in batches.", m.batching.batched_requests);
  w.counter("batch_calls_saved_total", "Upstream calls batching saved (requests - calls).",
            m.batching.calls_saved);
  w.counter("queue_full_total", "Requests refused with QueueFull.", m.batching.queue_full);
  w.gauge("batch_outstanding_requests", "Requests held by the batching layer.",
          static_cast<double>(m.batching.outstanding));
  w.counter("stream_buffer_hits_total", "Stream buffers reused from the pool.", m.buffers.hits);
  w.counter("stream_buffer_misses_total", "Stream buffers that had to be allocated.",
            m.buffers.misses);
  w.counter("upstream_attempts_total", "HTTP requests sent to the upstream, retries included.",
            m.upstream.attempts);
  w.counter("upstream_retries_total", "HTTP requests sent again after a transient failure.",
            m.upstream.retries);
  w.counter("upstream_tls_handshakes_total",
            "New upstream connections that completed a TLS handshake.", m.upstream.tls_handshakes);
  w.counter("upstream_sent_bytes_total", "Bytes sent to the upstream (headers and bodies).",
            m.upstream.bytes_sent);
  w.counter("upstream_received_bytes_total",
            "Bytes received from the upstream (headers and bodies).", m.upstream.bytes_received);
  w.counter("model_concurrency_decreases_total",
            "Per-model concurrency limits halved after a 429 concurrency answer (Z.AI 1302).",
            m.admission.concurrency_decreases);
  w.gauge("model_concurrency_max",
          "GLMPROXY_MODEL_CONCURRENCY: each model's starting and highest concurrency limit.",
          static_cast<double>(m.admission.model_concurrency_max));
  w.family("model_concurrency_limit", "gauge",
           "Concurrency limit now of each model held below glm_proxy_model_concurrency_max.");
  for (const auto& [model, limit] : m.admission.model_limits) {
    w.sample("model_concurrency_limit", "model=\"" + label_value(model) + "\"",
             static_cast<double>(limit));
  }
  w.counter("breaker_opened_total", "Times an upstream host's circuit breaker opened.",
            m.admission.breaker_opened);
  w.counter("breaker_rejections_total", "Requests failed fast by an open circuit breaker.",
            m.admission.breaker_rejections);
  w.family("pool_connections", "gauge", "Open upstream connections, by state.");
  w.sample("pool_connections", "state=\"in_use\"", static_cast<double>(m.pool.in_use));
  w.sample("pool_connections", "state=\"idle\"", static_cast<double>(m.pool.idle));
  w.gauge("pool_max_connections", "POOL_MAX_CONNECTIONS: requests on the wire at most.",
          static_cast<double>(m.pool.max_connections));
  w.gauge("pool_waiting_requests", "Requests waiting for a connection slot.",
          static_cast<double>(m.pool.waiting));
  w.counter("pool_connections_opened_total", "Upstream connections opened.",
            m.pool.connections_opened);
  w.family("pool_acquire_wait_seconds", "histogram", "Time requests waited for a connection slot.");
  w.histogram("pool_acquire_wait_seconds", {}, acquire_wait);
  w.gauge("process_resident_memory_bytes", "Resident memory of the process.",
          static_cast<double>(m.process.rss_bytes));
  w.counter("process_cpu_seconds_total", "User and system CPU time of the process.",
            m.process.cpu_seconds);
  w.gauge("process_cpu_usage_ratio",
          "CPU time over wall time in the last interval (1 = one core busy).",
          m.process.cpu_percent / 100.0);
  return w.take();
}

}  // namespace glmproxy::detail
