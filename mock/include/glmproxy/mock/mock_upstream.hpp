#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace glmproxy::mock {

using Milliseconds = std::chrono::milliseconds;

/// One scripted deviation from the normal answer, applied to the next `times` requests whose
/// path contains `path_contains`. Scripts are matched in the order they were added.
///
/// Example (429 with Retry-After twice, then normal answers):
///   Fault f;
///   f.status = 429;
///   f.headers = {{"Retry-After", "1"}};
///   f.body = R"({"error":{"code":"1302","message":"concurrency"}})";
///   f.times = 2;
///   server.add_fault(f);
struct Fault {
  std::string path_contains;        ///< "" matches every API request
  int times = 1;                    ///< requests it applies to; <= 0 means every request
  int status = 0;                   ///< 0: the normal status (200)
  std::optional<std::string> body;  ///< replaces the normal body, sent verbatim
  std::vector<std::pair<std::string, std::string>> headers;  ///< added to the response
  Milliseconds delay_before_headers{0};   ///< wait before the first response byte
  Milliseconds delay_between_chunks{0};   ///< wait before each SSE event (or piece, below)
  std::vector<std::size_t> split_pieces;  ///< send the body in pieces of these sizes (cycled)
  std::optional<std::size_t> close_after_body_bytes;  ///< send this much body, then close
  bool malformed_json = false;                        ///< cut the normal JSON body in half
  std::optional<int> stream_error_after_events;       ///< SSE: after this many events send an
                                                      ///< error event and end the stream
  std::string stream_error_json;      ///< that event's data; "" = a protocol-typical error
  bool close_after_response = false;  ///< close the socket after the response, without saying
                                      ///< "Connection: close" (a server dropping keep-alive)
  std::optional<std::int64_t> prompt_tokens;      ///< usage override
  std::optional<std::int64_t> completion_tokens;  ///< usage override
  /// Replaces the normal body with these bytes sent as a chunked text/event-stream body (cut
  /// per split_pieces, paced per delay_between_chunks): a hand-written, possibly hostile stream.
  std::optional<std::string> sse_body;
  /// A chunked body (SSE) never ends: the last chunk is not sent and the connection stays open,
  /// like an upstream that keeps the response open after [DONE].
  bool hold_open = false;
  /// "{{key}}" in body, sse_body and stream_error_json becomes the key the request carried
  /// (Authorization: Bearer ... or x-api-key), as an upstream that echoes it back would.
  bool echo_key = false;
};

/// A request as the mock received it (recorded when MockOptions::record_limit > 0).
struct RecordedRequest {
  std::string method;
  std::string path;                                          ///< the request target, query included
  std::vector<std::pair<std::string, std::string>> headers;  ///< names lower-cased
  std::string body;
  std::uint64_t connection_id = 0;  ///< which accepted connection carried it (1-based)

  /// The first header named `name` (lower-case), or nullopt.
  std::optional<std::string> header(const std::string& name) const;
};

struct MockStats {
  std::uint64_t connections_accepted = 0;
  std::uint64_t connections_open = 0;
  std::uint64_t requests = 0;           ///< API requests (control requests not counted)
  std::uint64_t chat_requests = 0;      ///< POST .../chat/completions
  std::uint64_t messages_requests = 0;  ///< POST .../v1/messages
  std::uint64_t embeddings_requests = 0;
  std::uint64_t models_requests = 0;
  std::uint64_t stream_requests = 0;  ///< requests with "stream": true
  std::uint64_t faults_applied = 0;
  std::uint64_t concurrency_rejections = 0;  ///< 429/1302 answers for max_concurrent_requests
  std::uint64_t peak_concurrency = 0;        ///< most API answers in progress at once (counted only
                                             ///< with max_concurrent_requests set)
  std::uint64_t tls_handshakes = 0;  ///< TLS mode: handshakes completed (a client that rejects
                                     ///< the certificate is only in connections_accepted)
  std::uint64_t tls_resumed = 0;     ///< of those, sessions resumed (SSL_session_reused)
};

struct MockOptions {
  std::string host = "127.0.0.1";
  std::uint16_t port = 0;  ///< 0: any free port; see MockUpstream::port()
  std::string reply_text = "Hello from the glmproxy mock upstream.";
  std::string reasoning_text;     ///< non-empty: sent as reasoning_content / thinking
  std::size_t stream_chunks = 4;  ///< how many deltas a streamed reply is cut into
  /// > 0: like a Z.AI account with a concurrency allowance, an API request that arrives while
  /// this many answers are still being sent gets 429 with business code 1302 at once.
  std::uint64_t max_concurrent_requests = 0;
  Milliseconds stream_event_delay{0};      ///< pause before each SSE event (like a model
                                           ///< producing tokens); a fault's own delay wins
  std::size_t record_limit = 1000;         ///< requests kept for recorded(); 0 records none
  std::size_t max_body_bytes = 64u << 20;  ///< larger request bodies get 413
  /// TLS mode: PEM files of the server certificate (chain) and its private key; both empty =
  /// plain HTTP. HTTP/1.1 only (no ALPN, so clients fall back from h2); session resumption
  /// (server cache and tickets) is on and counted in MockStats.
  std::string tls_cert_file;
  std::string tls_key_file;
};

/// A real HTTP/1.1 keep-alive server that speaks enough of the OpenAI and Anthropic APIs to
/// test and benchmark clients: POST .../chat/completions, POST .../v1/messages,
/// POST .../embeddings and GET .../models, JSON or SSE (`"stream": true`), on any base path.
/// One epoll thread serves every connection; delays never block other connections. With
/// MockOptions::tls_cert_file it speaks HTTPS (OpenSSL, non-blocking on the same loop).
///
/// Control endpoints (for out-of-process use; not counted as requests):
///   GET  /__mock/stats   -> MockStats as JSON
///   POST /__mock/reset   -> zero the counters, drop faults and recordings
///   POST /__mock/faults  -> add faults: a JSON array of objects with Fault's field names
///                           (delays in ms, e.g.
///                           {"status":429,"times":2,"headers":{"Retry-After":"1"}})
///
/// Thread safety: thread-safe. Every method may be called from any thread while it serves.
class MockUpstream {
 public:
  /// Binds and starts serving on a background thread. Returns nullptr and sets `error` when
  /// the address cannot be bound or the TLS certificate or key cannot be loaded.
  static std::unique_ptr<MockUpstream> start(const MockOptions& options = {},
                                             std::string* error = nullptr);
  ~MockUpstream();  ///< stops the thread and closes every connection
  MockUpstream(const MockUpstream&) = delete;
  MockUpstream& operator=(const MockUpstream&) = delete;

  std::uint16_t port() const noexcept;
  /// "http://127.0.0.1:<port>" ("https://..." in TLS mode) — append a base path such as
  /// "/api/paas/v4".
  std::string base_url() const;

  void add_fault(Fault fault);
  void clear_faults();
  MockStats stats() const;
  void reset();  ///< counters to zero, faults and recordings dropped (open connections stay)
  std::vector<RecordedRequest> recorded() const;
  /// Closes every open connection now, as a server restart would (counters stay).
  void drop_connections();

 private:
  class Impl;
  explicit MockUpstream(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace glmproxy::mock
