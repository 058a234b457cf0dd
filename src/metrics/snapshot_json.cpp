// MetricsSnapshot::to_json.

#include <fmt/format.h>

#include "glmproxy/metrics.hpp"

namespace glmproxy {

std::string MetricsSnapshot::to_json() const {
  return fmt::format(
      R"({{"cache":{{"hits":{},"misses":{},"stores":{},"evictions":{},"expirations":{},)"
      R"("entries":{},"bytes":{}}},"coalescing":{{"leaders":{},"joined":{}}},)"
      R"("batching":{{"batches":{},"batched_requests":{},"upstream_calls":{},"calls_saved":{},)"
      R"("queue_full":{},"queued":{},"outstanding":{},"mean_batch_size":{}}},)"
      R"("buffers":{{"hits":{},"misses":{},"in_use":{}}},"upstream_requests":{},)"
      R"("window":{{"seconds":{},"requests":{},"errors":{},"cache_hits":{},)"
      R"("requests_per_second":{},"error_rate":{},"cache_hit_rate":{},"p50_ms":{},)"
      R"("p95_ms":{},"p99_ms":{}}}}})",
      cache.hits, cache.misses, cache.stores, cache.evictions, cache.expirations, cache.entries,
      cache.bytes, coalescing.leaders, coalescing.joined, batching.batches,
      batching.batched_requests, batching.upstream_calls, batching.calls_saved, batching.queue_full,
      batching.queued, batching.outstanding, batching.mean_batch_size, buffers.hits, buffers.misses,
      buffers.in_use, upstream_requests, window.seconds, window.requests, window.errors,
      window.cache_hits, window.requests_per_second, window.error_rate, window.cache_hit_rate,
      window.p50_ms, window.p95_ms, window.p99_ms);
}

}  // namespace glmproxy
