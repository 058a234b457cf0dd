#include "transport/curl_callbacks.hpp"

#include <fmt/format.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <string>

#include "core/strings.hpp"

namespace glmproxy::detail {

namespace {

using Clock = std::chrono::steady_clock;

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = ascii_lower(c);
  return out;
}

std::size_t body_piece(Transfer* t, char* data, std::size_t len) {
  if (len == 0) return 0;
  CallbackEnv& env = *t->env;
  env.body_reads.fetch_add(1, std::memory_order_relaxed);
  t->got_response = true;
  if (t->ex.sink) t->last_rx = Clock::now();  // the stream idle timeout
  if (t->draining()) {
    t->drained += len;
    return t->drained > kDrainBytes ? CURL_WRITEFUNC_ERROR : len;
  }
  if (t->ex.sink && t->on_done) {
    const std::size_t taken = env.streams->on_stream_body(*t, {data, len});
    if (taken != 0) return taken;
    if (t->sink_state == SinkState::Active) return CURL_WRITEFUNC_ERROR;
  }
  // The decoded size counts (curl hands over what gzip, br or zstd expand to).
  const std::size_t configured = env.max_response_bytes;
  const std::size_t limit = t->ex.max_response_bytes != 0 ? t->ex.max_response_bytes : configured;
  if (len > limit - std::min(limit, t->body.size())) {
    t->abort_error = make_error(
        ErrorCode::BadResponse,
        fmt::format(
            "the response body is larger than GLMPROXY_MAX_RESPONSE_BYTES={} bytes "
            "(after decoding{})",
            configured,
            limit == configured ? "" : fmt::format("; {} bytes for this merged call", limit)));
    return CURL_WRITEFUNC_ERROR;
  }
  if (t->body.size() + len > t->body.capacity()) {
    // Grow by doubling, but never past the limit: memory stays near the cap.
    t->body.reserve(std::min(limit, std::max(t->body.size() + len, 2 * t->body.capacity())));
  }
  t->body.append(data, len);
  return len;
}

std::size_t header_line(Transfer* t, char* data, std::size_t len) {
  std::string_view line(data, len);
  t->header_bytes += len;
  if (t->header_bytes > kMaxHeaderBytes) {
    t->abort_error =
        make_error(ErrorCode::BadResponse,
                   fmt::format("the response headers are larger than {} bytes", kMaxHeaderBytes));
    return 0;
  }
  t->got_response = true;
  if (t->ex.sink) t->last_rx = Clock::now();  // the stream idle timeout
  if (line.starts_with("HTTP/")) {
    t->headers.clear();  // a new response (after 1xx) starts
    t->header_bytes = len;
    return len;
  }
  const auto colon = line.find(':');
  if (colon != std::string_view::npos) {
    const std::string_view name = trim(line.substr(0, colon));
    if (t->ex.keep_all_headers || iequals(name, "content-type") || iequals(name, "retry-after") ||
        iequals(name, "retry-after-ms")) {
      t->headers.emplace_back(lower(name), std::string(trim(line.substr(colon + 1))));
    }
  }
  return len;
}

}  // namespace

std::size_t on_body(char* data, std::size_t size, std::size_t n, void* user) {
  auto* t = static_cast<Transfer*>(user);
  try {
    return body_piece(t, data, size * n);
  } catch (...) {
    // An allocation failure, a sink's exception.
    if (!t->abort_error)
      t->abort_error = make_error(ErrorCode::Internal, "out of memory");  // allocates nothing
    return CURL_WRITEFUNC_ERROR;
  }
}

std::size_t on_header(char* data, std::size_t size, std::size_t n, void* user) {
  auto* t = static_cast<Transfer*>(user);
  try {
    return header_line(t, data, size * n);
  } catch (...) {
    t->abort_error = make_error(ErrorCode::Internal, "out of memory");  // fits SSO: no allocation
    return 0;
  }
}

std::size_t on_read(char* buffer, std::size_t size, std::size_t n, void* user) {
  auto* t = static_cast<Transfer*>(user);
  const std::string& body = t->ex.body;
  const std::size_t room = std::min(size * n, t->env->request_chunk_size);
  const std::size_t len = std::min(room, body.size() - t->upload_offset);
  std::memcpy(buffer, body.data() + t->upload_offset, len);
  t->upload_offset += len;
  t->env->upload_reads.fetch_add(1, std::memory_order_relaxed);
  return len;
}

int on_seek(void* user, curl_off_t offset, int origin) {
  auto* t = static_cast<Transfer*>(user);
  if (origin != SEEK_SET || offset < 0 || static_cast<std::size_t>(offset) > t->ex.body.size()) {
    return CURL_SEEKFUNC_FAIL;
  }
  t->upload_offset = static_cast<std::size_t>(offset);
  return CURL_SEEKFUNC_OK;
}

curl_socket_t on_open_socket(void* user, curlsocktype, curl_sockaddr* address) {
  // Close-on-exec, so that a child the application spawns does not inherit the connection.
  const curl_socket_t fd =
      ::socket(address->family, address->socktype | SOCK_CLOEXEC, address->protocol);
  if (fd != CURL_SOCKET_BAD) {
    auto* wire = static_cast<WireCounters*>(user);
    wire->open_sockets.fetch_add(1, std::memory_order_relaxed);
    wire->sockets_opened.fetch_add(1, std::memory_order_relaxed);
  }
  return fd;
}

int on_close_socket(void* user, curl_socket_t fd) {
  static_cast<WireCounters*>(user)->open_sockets.fetch_sub(1, std::memory_order_relaxed);
  return ::close(fd);
}

}  // namespace glmproxy::detail
