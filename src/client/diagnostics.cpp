#include "client/diagnostics.hpp"

namespace glmproxy::detail {

ClientDiagnostics diagnostics_of(const TransportStats& t, std::uint64_t key_file_reads,
                                 std::uint64_t key_file_writes) noexcept {
  ClientDiagnostics d;
  d.in_flight = t.in_flight;
  d.reading_out = t.reading_out;
  d.waiting = t.waiting;
  d.open_connections = t.open_connections;
  d.connections_opened = t.connections_opened;
  d.tls_handshakes = t.tls_handshakes;
  d.loop_turns = t.loop_turns;
  d.wakeups = t.wakeups;
  d.easy_handles_created = t.easy_handles_created;
  d.body_reads = t.body_reads;
  d.upload_reads = t.upload_reads;
  d.streams_cancelled = t.streams_cancelled;
  d.cancelled_connections_kept = t.cancelled_connections_kept;
  d.attempts = t.attempts;
  d.retries = t.retries;
  d.concurrency_decreases = t.concurrency_decreases;
  d.breaker_opened = t.breaker_opened;
  d.breaker_rejections = t.breaker_rejections;
  d.buffer_hits = t.buffers.hits();
  d.buffer_misses = t.buffers.misses();
  d.buffers_in_use = t.buffers.in_use();
  d.key_file_reads = key_file_reads;
  d.key_file_writes = key_file_writes;
  return d;
}

}  // namespace glmproxy::detail
