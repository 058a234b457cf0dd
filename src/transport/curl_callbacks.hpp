#pragma once

// The functions libcurl calls while an attempt runs (on the I/O thread, inside
// curl_multi_perform): response headers and body pieces into the Transfer (bounded), a large
// request body out in STREAM_REQUEST_CHUNK_SIZE pieces, and sockets opened close-on-exec and
// counted. A 2xx stream's body goes to the driver (StreamReceiver), which decides what the
// sink's answer means. Nothing unwinds through libcurl: each catches what it may throw.

#include <curl/curl.h>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "transport/transfer.hpp"
#include "transport/wire_stats.hpp"

namespace glmproxy::detail {

/// Response header lines of one attempt, kept or not: past this the response is refused (an
/// upstream sending headers without end never reaches its body). Below curl's own 300 KB limit,
/// which reports a retryable receive error instead of a bad response.
inline constexpr std::size_t kMaxHeaderBytes = 256u << 10;

/// A cancelled HTTP/1.1 stream is read on (and thrown away) for at most this long / this much,
/// so that a stream close to its end leaves its connection reusable; past either, it is closed.
inline constexpr auto kDrainTime = std::chrono::milliseconds(100);
inline constexpr std::size_t kDrainBytes = 64u << 10;

/// Takes a 2xx stream's body pieces (the driver).
class StreamReceiver {
 public:
  /// What the write callback returns for `chunk`: its size (taken), 0 (not a 2xx stream body:
  /// buffer it), or CURL_WRITEFUNC_ERROR (stop the attempt).
  virtual std::size_t on_stream_body(Transfer& t, std::string_view chunk) = 0;
  virtual ~StreamReceiver() = default;
};

/// What the callbacks read and count; owned by the driver, outliving every transfer.
struct CallbackEnv {
  std::size_t request_chunk_size = 0;  ///< STREAM_REQUEST_CHUNK_SIZE
  std::size_t max_response_bytes = 0;  ///< GLMPROXY_MAX_RESPONSE_BYTES
  StreamReceiver* streams = nullptr;
  std::atomic<std::uint64_t> upload_reads{0};  ///< read-callback calls
  std::atomic<std::uint64_t> body_reads{0};    ///< write-callback calls
};

// CURLOPT_WRITEFUNCTION / HEADERFUNCTION / READFUNCTION / SEEKFUNCTION; `user` is the Transfer.
std::size_t on_body(char* data, std::size_t size, std::size_t n, void* user);
std::size_t on_header(char* data, std::size_t size, std::size_t n, void* user);
std::size_t on_read(char* buffer, std::size_t size, std::size_t n, void* user);
int on_seek(void* user, curl_off_t offset, int origin);
// CURLOPT_OPENSOCKETFUNCTION / CLOSESOCKETFUNCTION; `user` is the WireCounters.
curl_socket_t on_open_socket(void* user, curlsocktype purpose, curl_sockaddr* address);
int on_close_socket(void* user, curl_socket_t fd);

}  // namespace glmproxy::detail
