#pragma once

// What an attempt put on and took off the wire, read from its curl handle after (or while) it
// ran: bytes with headers, new TLS handshakes, and the profiler's phase timings. I/O thread only
// (it reads a handle the I/O thread owns); the counters are read from any thread.

#include <curl/curl.h>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>

#include "transport/transport.hpp"

namespace glmproxy::detail {

struct WireBytes {
  std::uint64_t sent = 0, received = 0;  ///< headers included
};

/// Bytes the attempt on `easy` sent and received so far. `body_size`: the request body's size;
/// `request_chunk_size`: STREAM_REQUEST_CHUNK_SIZE (larger bodies go through the read callback).
WireBytes wire_bytes(CURL* easy, std::size_t body_size, std::size_t request_chunk_size);

/// curl's phase timings of the attempt on `easy` into `marks` (bytes added to its totals).
/// Called before the exchange's callback runs (which hands the marks to the caller), never after.
void fill_marks(TransferMarks& marks, CURL* easy, std::chrono::steady_clock::time_point admitted,
                int attempts, bool got_response, WireBytes bytes);

/// Whether the attempt on `easy` opened a new connection that completed a TLS handshake.
bool made_tls_handshake(CURL* easy);

/// The transport's wire counters (TransportStats). Thread safety: thread-safe.
struct WireCounters {
  std::atomic<std::uint64_t> bytes_sent{0}, bytes_received{0}, tls_handshakes{0};
  std::atomic<std::uint64_t> sockets_opened{0};
  std::atomic<int> open_sockets{0};  ///< in use or idle in curl's pool

  void add(WireBytes b) noexcept {
    bytes_sent.fetch_add(b.sent, std::memory_order_relaxed);
    bytes_received.fetch_add(b.received, std::memory_order_relaxed);
  }
};

}  // namespace glmproxy::detail
