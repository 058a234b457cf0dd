#include "metrics/snapshot.hpp"

#include <algorithm>

namespace glmproxy::detail {

namespace {

void fill_window(MetricsSnapshot::Window& w, const Metrics& metrics) {
  const auto recent = metrics.recent();
  w.seconds = std::chrono::duration<double>(metrics.window()).count();
  w.requests = recent.latency.count;
  w.errors = recent.errors;
  w.cache_hits = recent.cache_hits;
  if (w.requests == 0) return;
  const auto n = static_cast<double>(w.requests);
  w.requests_per_second = n / w.seconds;
  w.error_rate = static_cast<double>(w.errors) / n;
  w.cache_hit_rate = static_cast<double>(w.cache_hits) / n;
  w.p50_ms = static_cast<double>(recent.latency.quantile_us(0.50)) / 1000.0;
  w.p95_ms = static_cast<double>(recent.latency.quantile_us(0.95)) / 1000.0;
  w.p99_ms = static_cast<double>(recent.latency.quantile_us(0.99)) / 1000.0;
}

void fill_pool(MetricsSnapshot::Pool& pool, const TransportStats& t, int max_connections) {
  pool.max_connections = max_connections;
  pool.in_use = t.in_flight;
  pool.open = t.open_connections;
  pool.idle = std::max(0, t.open_connections - t.in_flight - t.reading_out);
  pool.waiting = t.waiting;
  pool.connections_opened = t.connections_opened;
  pool.utilisation = max_connections > 0
                         ? static_cast<double>(t.in_flight) / static_cast<double>(max_connections)
                         : 0.0;
  pool.acquired = t.acquire_wait.count;
  if (t.acquire_wait.count > 0) {
    pool.acquire_wait_avg_ms = static_cast<double>(t.acquire_wait.sum_us) /
                               static_cast<double>(t.acquire_wait.count) / 1000.0;
    pool.acquire_wait_p99_ms = static_cast<double>(t.acquire_wait.quantile_us(0.99)) / 1000.0;
  }
}

}  // namespace

MetricsSnapshot assemble_snapshot(const SnapshotSources& s, const TransportStats& t,
                                  const Metrics& metrics, CpuMeter& cpu) {
  MetricsSnapshot m;
  m.cache = s.cache;
  m.coalescing = s.coalescing;
  auto& b = m.batching;
  b.batches = s.batches;
  b.batched_requests = s.batched_requests;
  b.upstream_calls = s.upstream_calls;
  b.calls_saved = s.batched_requests > s.upstream_calls ? s.batched_requests - s.upstream_calls : 0;
  b.queue_full = s.queue_full;
  b.queued = s.queued;
  b.outstanding = s.outstanding;
  b.mean_batch_size =
      s.batches == 0 ? 0.0
                     : static_cast<double>(s.batched_requests) / static_cast<double>(s.batches);
  m.buffers.hits = t.buffers.hits();
  m.buffers.misses = t.buffers.misses();
  m.buffers.in_use = t.buffers.in_use();
  m.upstream_requests = s.upstream_requests;
  fill_window(m.window, metrics);
  metrics.fill(m);
  fill_pool(m.pool, t, s.max_connections);
  m.upstream.attempts = t.attempts;
  m.upstream.retries = t.retries;
  m.upstream.tls_handshakes = t.tls_handshakes;
  m.upstream.bytes_sent = t.bytes_sent;
  m.upstream.bytes_received = t.bytes_received;
  m.admission.concurrency_decreases = t.concurrency_decreases;
  m.admission.breaker_opened = t.breaker_opened;
  m.admission.breaker_rejections = t.breaker_rejections;
  m.admission.model_concurrency_max = t.model_concurrency_max;
  m.admission.model_limits = t.model_limits;
  const ProcessSample process = sample_process();
  const CpuMeter::Reading reading = cpu.read(process);
  m.process.rss_bytes = process.rss_bytes;
  m.process.peak_rss_bytes = process.peak_rss_bytes;
  m.process.cpu_seconds = process.cpu_seconds;
  m.process.cpu_percent = reading.percent;
  m.process.cpu_interval_seconds = reading.interval_seconds;
  return m;
}

}  // namespace glmproxy::detail
