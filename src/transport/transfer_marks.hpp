#pragma once

// Where one exchange's time went, on its own so that the profiler (src/metrics/) reads it
// without the whole transport interface.

#include <chrono>
#include <cstdint>

namespace glmproxy::detail {

/// Where one exchange's time went (PROFILING_ENABLED), written by the transport on the I/O
/// thread before the exchange's callback runs (`submitted` by the submitting thread).
struct TransferMarks {
  using TimePoint = std::chrono::steady_clock::time_point;
  TimePoint submitted;  ///< handed to the transport
  TimePoint admitted;   ///< the last attempt got its connection slot
  /// curl's timings of the last attempt, in microseconds after `admitted`; -1: not reached
  /// (a reused connection has no DNS, connect or TLS phase).
  std::int64_t dns_us = -1, connect_us = -1, tls_us = -1, sent_us = -1, first_byte_us = -1,
               total_us = -1;
  bool reused_connection = false;
  int attempts = 0;
  std::uint64_t bytes_sent = 0, bytes_received = 0;  ///< all attempts, headers included
};

}  // namespace glmproxy::detail
