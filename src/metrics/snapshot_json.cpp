// MetricsSnapshot::to_json.

#include <fmt/format.h>

#include "core/json.hpp"
#include "glmproxy/metrics.hpp"

namespace glmproxy {

namespace {
// A caller-built snapshot may hold NaN or infinity: written as 0.
constexpr auto finite = detail::json_finite;
}  // namespace

std::string MetricsSnapshot::to_json() const try {
  std::string out = fmt::format(
      R"({{"cache":{{"hits":{},"misses":{},"stores":{},"evictions":{},"expirations":{},)"
      R"("entries":{},"bytes":{}}},"coalescing":{{"leaders":{},"joined":{}}},)"
      R"("batching":{{"batches":{},"batched_requests":{},"upstream_calls":{},"calls_saved":{},)"
      R"("queue_full":{},"queued":{},"outstanding":{},"mean_batch_size":{}}},)"
      R"("buffers":{{"hits":{},"misses":{},"in_use":{}}},"upstream_requests":{},)"
      R"("window":{{"seconds":{},"requests":{},"errors":{},"cache_hits":{},)"
      R"("requests_per_second":{},"error_rate":{},"cache_hit_rate":{},"p50_ms":{},)"
      R"("p95_ms":{},"p99_ms":{}}},)",
      cache.hits, cache.misses, cache.stores, cache.evictions, cache.expirations, cache.entries,
      cache.bytes, coalescing.leaders, coalescing.joined, batching.batches,
      batching.batched_requests, batching.upstream_calls, batching.calls_saved, batching.queue_full,
      batching.queued, batching.outstanding, finite(batching.mean_batch_size), buffers.hits,
      buffers.misses, buffers.in_use, upstream_requests, finite(window.seconds), window.requests,
      window.errors, window.cache_hits, finite(window.requests_per_second),
      finite(window.error_rate), finite(window.cache_hit_rate), finite(window.p50_ms),
      finite(window.p95_ms), finite(window.p99_ms));
  out += fmt::format(
      R"("requests":{{"total":{},"ok":{},"cache_hits":{},"errors":{},"prompt_tokens":{},)"
      R"("completion_tokens":{},"cached_prompt_tokens":{},"cache_creation_tokens":{},)"
      R"("reasoning_tokens":{},"errors_by_code":{{)",
      requests.total, requests.ok, requests.cache_hits, requests.errors, requests.prompt_tokens,
      requests.completion_tokens, requests.cached_prompt_tokens, requests.cache_creation_tokens,
      requests.reasoning_tokens);
  bool first = true;
  for (const auto& [code, n] : requests.errors_by_code) {
    if (!first) out += ',';
    // to_string(ErrorCode) names, but the map is the caller's to fill too: escaped.
    if (!detail::append_json_string(out, code)) out += "\"?\"";
    out += fmt::format(":{}", n);
    first = false;
  }
  out += fmt::format(
      R"(}}}},"pool":{{"max_connections":{},"in_use":{},"idle":{},"open":{},"waiting":{},)"
      R"("connections_opened":{},"utilisation":{},"acquired":{},"acquire_wait_avg_ms":{},)"
      R"("acquire_wait_p99_ms":{}}},"upstream":{{"attempts":{},"retries":{},"tls_handshakes":{},)"
      R"("bytes_sent":{},)"
      R"("bytes_received":{}}},"admission":{{"concurrency_decreases":{},"breaker_opened":{},)"
      R"("breaker_rejections":{},"model_concurrency_max":{},"model_limits":{{)",
      pool.max_connections, pool.in_use, pool.idle, pool.open, pool.waiting,
      pool.connections_opened, finite(pool.utilisation), pool.acquired,
      finite(pool.acquire_wait_avg_ms), finite(pool.acquire_wait_p99_ms), upstream.attempts,
      upstream.retries, upstream.tls_handshakes, upstream.bytes_sent, upstream.bytes_received,
      admission.concurrency_decreases, admission.breaker_opened, admission.breaker_rejections,
      admission.model_concurrency_max);
  first = true;
  for (const auto& [model, limit] : admission.model_limits) {
    if (!first) out += ',';
    if (!detail::append_json_string(out, model)) out += "\"?\"";
    out += fmt::format(":{}", limit);
    first = false;
  }
  out += fmt::format(R"(}}}},"process":{{"rss_bytes":{},"peak_rss_bytes":{},"cpu_seconds":{},)"
                     R"("cpu_percent":{},"cpu_interval_seconds":{}}}}})",
                     process.rss_bytes, process.peak_rss_bytes, finite(process.cpu_seconds),
                     finite(process.cpu_percent), finite(process.cpu_interval_seconds));
  return out;
} catch (...) {
  // Nothing leaves the library as an exception.
  return std::string();
}

}  // namespace glmproxy
