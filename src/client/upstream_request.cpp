#include "client/upstream_request.hpp"

#include <fmt/format.h>

#include <chrono>

#include "core/url.hpp"
#include "glmproxy/version.hpp"
#include "protocol/protocol.hpp"

namespace glmproxy::detail {

UpstreamRequests::UpstreamRequests(const Config& config) : config_(config) {
  for (Protocol p : {Protocol::OpenAI, Protocol::Anthropic}) {
    for (bool stream : {false, true}) {
      HttpExchange ex;
      add_headers(ex, p, {}, stream ? "text/event-stream" : "application/json");
      ex.headers.emplace_back("Content-Type: application/json");
      chat_headers_[p == Protocol::Anthropic][stream] = SharedHeaders::make(ex.headers);
    }
  }
}

const std::string& UpstreamRequests::base_url(Protocol p) const noexcept {
  return p == Protocol::Anthropic ? config_.upstream.anthropic_base_url
                                  : config_.upstream.openai_base_url;
}

void UpstreamRequests::add_headers(HttpExchange& ex, Protocol p, const std::string& request_id,
                                   std::string_view accept) const {
  const std::string& key = config_.upstream.api_key;
  if (p == Protocol::Anthropic) {
    if (!key.empty()) ex.headers.push_back("x-api-key: " + key);
    ex.headers.push_back("anthropic-version: " + config_.upstream.anthropic_version);
  } else if (!key.empty()) {
    ex.headers.push_back("Authorization: Bearer " + key);
  }
  ex.headers.push_back(fmt::format("Accept: {}", accept));
  ex.headers.emplace_back(std::string("User-Agent: glmproxy/") + kVersionString);
  // check_request_id() has refused ids that cannot be a header value.
  if (!request_id.empty()) ex.headers.push_back("X-Request-ID: " + request_id);
}

HttpExchange UpstreamRequests::chat_exchange(const ChatRequest& request, std::string body,
                                             const std::string& model, bool stream) const {
  HttpExchange ex;
  ex.method = "POST";
  ex.model = model;
  ex.protocol = request.protocol;
  ex.url = join_url(base_url(request.protocol), chat_path(request.protocol));
  ex.body = std::move(body);
  ex.keep_all_headers = false;
  if (request.request_id.empty()) {
    ex.shared_headers = chat_headers_[request.protocol == Protocol::Anthropic][stream];
    return ex;
  }
  add_headers(ex, request.protocol, request.request_id,
              stream ? "text/event-stream" : "application/json");
  ex.headers.emplace_back("Content-Type: application/json");
  return ex;
}

Result<ChatResponse> to_chat_response(Protocol protocol, Result<HttpResult> r) {
  if (!r) return std::move(r).error();
  HttpResult& http = *r;
  if (http.status < 200 || http.status >= 300) {
    return map_error_response(
        protocol, http.status, http.body, find_header(http.headers, "retry-after"),
        find_header(http.headers, "retry-after-ms"), std::chrono::system_clock::now());
  }
  auto parsed = parse_chat_response(protocol, http.body);
  if (!parsed) {
    Error e = std::move(parsed).error();
    if (e.http_status == 0) e.http_status = http.status;
    return e;
  }
  parsed->http_status = http.status;
  parsed->attempts = http.attempts;
  return parsed;
}

}  // namespace glmproxy::detail
