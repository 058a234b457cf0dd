#pragma once

// Assembles a client's MetricsSnapshot: the request metrics, the transport's counters, the
// process, and what the layers above metrics/ report (as plain numbers, so that metrics/
// depends on none of them).

#include <cstddef>
#include <cstdint>

#include "glmproxy/metrics.hpp"
#include "metrics/process_stats.hpp"
#include "metrics/registry.hpp"
#include "transport/transport.hpp"

namespace glmproxy::detail {

/// What the client's own parts count (its cache, single-flight and dispatcher).
struct SnapshotSources {
  MetricsSnapshot::Cache cache;
  MetricsSnapshot::Coalescing coalescing;
  std::uint64_t batches = 0, batched_requests = 0, upstream_calls = 0, queue_full = 0;
  std::size_t queued = 0, outstanding = 0;
  std::uint64_t upstream_requests = 0;  ///< exchanges handed to the transport
  int max_connections = 0;              ///< POOL_MAX_CONNECTIONS
};

/// The snapshot from `sources`, the transport's counters `t` (read once by the caller), the
/// request metrics and a CPU reading of `cpu`.
MetricsSnapshot assemble_snapshot(const SnapshotSources& sources, const TransportStats& t,
                                  const Metrics& metrics, CpuMeter& cpu);

}  // namespace glmproxy::detail
