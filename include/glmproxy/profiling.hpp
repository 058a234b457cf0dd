#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "glmproxy/export.hpp"

namespace glmproxy {

/// Where one request's time went (PROFILING_ENABLED): the moments it passed each phase, in
/// microseconds after the call began. API keys never appear in a profile.
///
/// Thread safety: thread-compatible (a plain value).
struct GLMPROXY_API RequestProfile {
  std::string request_id;  ///< ChatRequest::request_id, or "glmproxy-<n>" when none was given
  std::string api;         ///< "openai", "anthropic" or "embeddings"
  std::string model;       ///< the effective model ("" for embeddings without one)
  bool stream = false;
  /// "ok" (answered by an upstream call), "coalesced" (by an identical request's call),
  /// "cache_hit" or "error". An embedding request merged into another's batch call is "ok"
  /// with attempts 0 and no transport marks (the batch's leader carries them).
  std::string outcome;
  std::string error_code;          ///< to_string(ErrorCode) when outcome is "error"
  int http_status = 0;             ///< the upstream's final status; 0 without one
  int attempts = 0;                ///< HTTP attempts of its upstream call (0: none of its own)
  bool connection_reused = false;  ///< the last attempt went out on a pooled connection
  std::uint64_t bytes_sent = 0, bytes_received = 0;  ///< of its upstream call, headers included
  std::chrono::system_clock::time_point started_at;

  /// Microseconds from the call to each mark; -1 when the request did not pass it (a cache
  /// hit has no connection, a reused connection no connect or TLS phase). The curl marks
  /// (dns … first_byte) are those of the last attempt.
  struct Marks {
    std::int64_t cache = -1;         ///< the response cache was asked
    std::int64_t queued = -1;        ///< handed to the I/O thread (after any batch window)
    std::int64_t admitted = -1;      ///< got a connection slot (POOL_MAX_CONNECTIONS)
    std::int64_t dns = -1;           ///< name resolved
    std::int64_t connect = -1;       ///< TCP connected
    std::int64_t tls = -1;           ///< TLS handshake done
    std::int64_t request_sent = -1;  ///< ready to send the request (curl's pre-transfer)
    std::int64_t first_byte = -1;    ///< the first response byte arrived
    std::int64_t first_token = -1;   ///< streams: the first text or reasoning delta
    std::int64_t done = -1;          ///< the answer was handed back
  } at_us;

  /// One JSON object with every field ("started_at" in Unix milliseconds).
  std::string to_json() const;
};

/// The profiler's view of recent requests: ProxyClient::profiling().
///
/// Thread safety: thread-compatible (a plain value).
struct GLMPROXY_API ProfilingReport {
  bool enabled = false;        ///< PROFILING_ENABLED
  std::size_t capacity = 0;    ///< GLMPROXY_PROFILING_RING_SIZE: profiles kept
  std::size_t kept = 0;        ///< profiles in the ring now (the newest `capacity`)
  std::uint64_t recorded = 0;  ///< profiles recorded since the client was created

  /// Over the profiles kept, in milliseconds (exact, not bucketed).
  struct Summary {
    std::size_t count = 0;
    double avg_ms = 0, p50_ms = 0, p95_ms = 0, p99_ms = 0, max_ms = 0;
  };
  Summary total;       ///< call to answer
  Summary queue_wait;  ///< call to admitted: before the request got on the wire (for a retried
                       ///< request this includes the earlier attempts and their backoffs)
  Summary upstream;    ///< admitted to first byte: the upstream's own time
  std::vector<RequestProfile> slowest;  ///< by total time, slowest first

  std::string to_json() const;
};

}  // namespace glmproxy
