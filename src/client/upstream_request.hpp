#pragma once

// What goes upstream for a call (URL, authentication, headers, body) and what its answer
// means (a ChatResponse or a typed Error).

#include <memory>
#include <string>
#include <string_view>

#include "glmproxy/config.hpp"
#include "glmproxy/request.hpp"
#include "glmproxy/response.hpp"
#include "transport/transport.hpp"

namespace glmproxy::detail {

/// Thread safety: immutable after construction; any thread.
class UpstreamRequests {
 public:
  explicit UpstreamRequests(const Config& config);

  /// The configured base URL of `p`.
  const std::string& base_url(Protocol p) const noexcept;

  /// Authentication (the upstream key, as Bearer or x-api-key), Accept, User-Agent and the
  /// request id (already checked to be a header value) added to `ex.headers`.
  void add_headers(HttpExchange& ex, Protocol p, const std::string& request_id,
                   std::string_view accept = "application/json") const;

  /// A chat call's exchange: POST to the protocol's chat path. Without a request id it sends one
  /// of four header lists made once (protocol x JSON/SSE).
  HttpExchange chat_exchange(const ChatRequest& request, std::string body, const std::string& model,
                             bool stream) const;

 private:
  const Config& config_;
  std::shared_ptr<const SharedHeaders> chat_headers_[2][2];  // [anthropic][stream]
};

/// The transport's answer to a (non-streamed) chat call: a parsed ChatResponse for 2xx, the
/// mapped error (business code, Retry-After) otherwise.
Result<ChatResponse> to_chat_response(Protocol protocol, Result<HttpResult> r);

}  // namespace glmproxy::detail
