// ProxyClient: composition only. Requests are written by the protocol layer, carried by the
// transport, and answers parsed back by the protocol layer.

#include "glmproxy/proxy_client.hpp"

#include <fmt/format.h>

#include <future>
#include <memory>

#include "client_access.hpp"
#include "glmproxy/version.hpp"
#include "protocol/chat_stream.hpp"
#include "protocol/protocol.hpp"
#include "transport/transport.hpp"

namespace glmproxy {

class ProxyClient::Impl {
 public:
  explicit Impl(Config config) : config_(std::move(config)) {}

  Result<void> start() {
    auto transport = detail::Transport::create(config_);
    if (!transport) return std::move(transport).error();
    transport_ = std::move(*transport);
    if (config_.pool.warm && config_.pool.min_connections > 0) {
      auto warmed =
          transport_->warm(config_.upstream.openai_base_url, config_.pool.min_connections);
      if (!warmed) log(LogLevel::Warn, "pool warm-up failed: " + warmed.error().describe());
    }
    return {};
  }

  void complete_async(const ChatRequest& request,
                      std::function<void(Result<ChatResponse>)> on_done) {
    const std::string& model =
        request.model.empty() ? config_.upstream.default_model : request.model;
    auto body = detail::write_chat_request(request, model, /*stream=*/false);
    if (!body) {
      transport_->fail(
          std::move(body).error(),
          [cb = std::move(on_done)](Result<detail::HttpResult> r) { cb(std::move(r).error()); });
      return;
    }
    detail::HttpExchange ex;
    ex.method = "POST";
    ex.protocol = request.protocol;
    ex.url = detail::join_url(base_url(request.protocol), detail::chat_path(request.protocol));
    ex.body = std::move(*body);
    add_headers(ex, request.protocol, request.request_id);
    ex.headers.emplace_back("Content-Type: application/json");
    const Protocol protocol = request.protocol;
    transport_->submit(std::move(ex),
                       [protocol, cb = std::move(on_done)](Result<detail::HttpResult> r) {
                         cb(to_chat_response(protocol, std::move(r)));
                       });
  }

  Result<ChatResponse> complete(const ChatRequest& request) {
    if (transport_->on_io_thread()) return called_from_callback("complete()");
    // Shared, so the I/O thread never touches a promise this thread has already destroyed.
    auto promise = std::make_shared<std::promise<Result<ChatResponse>>>();
    auto future = promise->get_future();
    complete_async(request,
                   [promise](Result<ChatResponse> r) { promise->set_value(std::move(r)); });
    return future.get();
  }

  Result<ChatResponse> stream(const ChatRequest& request,
                              const std::function<bool(const StreamEvent&)>& on_event) {
    if (transport_->on_io_thread()) return called_from_callback("stream()");
    const std::string& model =
        request.model.empty() ? config_.upstream.default_model : request.model;
    auto body = detail::write_chat_request(request, model, /*stream=*/true);
    if (!body) return std::move(body).error();
    static const detail::StreamCallback kIgnore = [](const StreamEvent&) { return true; };
    const detail::StreamCallback* callback = on_event ? &on_event : &kIgnore;
    detail::SseLimits limits;
    limits.max_line_bytes = config_.stream.max_line_bytes;
    limits.max_event_bytes = config_.stream.max_event_bytes;
    auto sink = std::make_shared<detail::ChatStream>(request.protocol, callback, limits);

    detail::HttpExchange ex;
    ex.method = "POST";
    ex.protocol = request.protocol;
    ex.url = detail::join_url(base_url(request.protocol), detail::chat_path(request.protocol));
    ex.body = std::move(*body);
    add_headers(ex, request.protocol, request.request_id, "text/event-stream");
    ex.headers.emplace_back("Content-Type: application/json");
    ex.sink = sink;
    auto promise = std::make_shared<std::promise<Result<detail::HttpResult>>>();
    auto future = promise->get_future();
    transport_->submit(std::move(ex), [promise](Result<detail::HttpResult> r) {
      promise->set_value(std::move(r));
    });
    Result<detail::HttpResult> r = future.get();
    if (!r) return std::move(r).error();
    if (r->status < 200 || r->status >= 300)
      return to_chat_response(request.protocol, std::move(r));
    ChatResponse out = sink->take_response();
    out.http_status = r->status;
    out.attempts = r->attempts;
    return out;
  }

  Result<HttpResponse> send(const HttpRequest& request) {
    if (transport_->on_io_thread()) return called_from_callback("send()");
    if (request.method.empty() || request.method.find_first_of(" \r\n\t") != std::string::npos) {
      return make_error(
          ErrorCode::InvalidArgument,
          fmt::format("HttpRequest::method must be a token, got \"{}\"", request.method));
    }
    for (const auto& [name, value] : request.headers) {
      if (name.empty() || name.find_first_of(":\r\n") != std::string::npos ||
          value.find_first_of("\r\n") != std::string::npos) {
        return make_error(ErrorCode::InvalidArgument,
                          fmt::format("HttpRequest header \"{}\" has a bad name or value", name));
      }
    }
    detail::HttpExchange ex;
    ex.method = request.method;
    ex.protocol = request.protocol;
    ex.url = detail::join_url(base_url(request.protocol), request.path);
    ex.body = request.body;
    ex.retry_on_status = false;
    add_headers(ex, request.protocol, {});
    for (const auto& [name, value] : request.headers) ex.headers.push_back(name + ": " + value);
    auto promise = std::make_shared<std::promise<Result<detail::HttpResult>>>();
    auto future = promise->get_future();
    transport_->submit(std::move(ex), [promise](Result<detail::HttpResult> r) {
      promise->set_value(std::move(r));
    });
    Result<detail::HttpResult> r = future.get();
    if (!r) return std::move(r).error();
    HttpResponse out;
    out.status = r->status;
    out.headers = std::move(r->headers);
    out.body = std::move(r->body);
    return out;
  }

  const Config& config() const noexcept { return config_; }
  detail::TransportStats transport_stats() const noexcept { return transport_->stats(); }

  // Destroy the transport first: it resolves what is pending while config_ still lives.
  ~Impl() { transport_.reset(); }

 private:
  static Error called_from_callback(std::string_view what) {
    return make_error(ErrorCode::InvalidArgument,
                      fmt::format("{} called on the client's I/O thread (from a completion "
                                  "callback) would deadlock; use complete_async()",
                                  what));
  }

  const std::string& base_url(Protocol p) const {
    return p == Protocol::Anthropic ? config_.upstream.anthropic_base_url
                                    : config_.upstream.openai_base_url;
  }

  void add_headers(detail::HttpExchange& ex, Protocol p, const std::string& request_id,
                   std::string_view accept = "application/json") const {
    const std::string& key = config_.upstream.api_key;
    if (p == Protocol::Anthropic) {
      if (!key.empty()) ex.headers.push_back("x-api-key: " + key);
      ex.headers.push_back("anthropic-version: " + config_.upstream.anthropic_version);
    } else if (!key.empty()) {
      ex.headers.push_back("Authorization: Bearer " + key);
    }
    ex.headers.push_back(fmt::format("Accept: {}", accept));
    ex.headers.emplace_back(std::string("User-Agent: glmproxy/") + kVersionString);
    if (!request_id.empty() && request_id.find_first_of("\r\n") == std::string::npos) {
      ex.headers.push_back("X-Request-ID: " + request_id);
    }
  }

  static Result<ChatResponse> to_chat_response(Protocol protocol, Result<detail::HttpResult> r) {
    if (!r) return std::move(r).error();
    detail::HttpResult& http = *r;
    if (http.status < 200 || http.status >= 300) {
      std::string_view retry_after, retry_after_ms;
      for (const auto& [k, v] : http.headers) {
        if (k == "retry-after") retry_after = v;
        if (k == "retry-after-ms") retry_after_ms = v;
      }
      return detail::map_error_response(protocol, http.status, http.body, retry_after,
                                        retry_after_ms, std::chrono::system_clock::now());
    }
    auto parsed = detail::parse_chat_response(protocol, http.body);
    if (!parsed) {
      Error e = std::move(parsed).error();
      if (e.http_status == 0) e.http_status = http.status;
      return e;
    }
    parsed->http_status = http.status;
    parsed->attempts = http.attempts;
    return parsed;
  }

  void log(LogLevel level, const std::string& message) const {
    if (config_.logger && level >= config_.log_level && config_.log_level != LogLevel::Off) {
      config_.logger(level, message);
    }
  }

  Config config_;
  std::unique_ptr<detail::Transport> transport_;
};

Result<ProxyClient> ProxyClient::create(Config config) {
  if (auto valid = config.validate(); !valid) return std::move(valid).error();
  auto impl = std::make_unique<Impl>(std::move(config));
  if (auto started = impl->start(); !started) return std::move(started).error();
  return ProxyClient(std::move(impl));
}

ProxyClient::ProxyClient(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
ProxyClient::ProxyClient(ProxyClient&&) noexcept = default;
ProxyClient& ProxyClient::operator=(ProxyClient&&) noexcept = default;
ProxyClient::~ProxyClient() = default;

namespace {
Error moved_from() {
  return make_error(ErrorCode::InvalidArgument, "this ProxyClient was moved from");
}
}  // namespace

Result<ChatResponse> ProxyClient::complete(const ChatRequest& request) {
  if (!impl_) return moved_from();
  return impl_->complete(request);
}

void ProxyClient::complete_async(ChatRequest request,
                                 std::function<void(Result<ChatResponse>)> on_done) {
  if (!impl_) {
    if (on_done) on_done(moved_from());
    return;
  }
  if (!on_done) on_done = [](Result<ChatResponse>) {};
  impl_->complete_async(request, std::move(on_done));
}

Result<ChatResponse> ProxyClient::stream(const ChatRequest& request,
                                         const std::function<bool(const StreamEvent&)>& on_event) {
  if (!impl_) return moved_from();
  return impl_->stream(request, on_event);
}

Result<HttpResponse> ProxyClient::send(const HttpRequest& request) {
  if (!impl_) return moved_from();
  return impl_->send(request);
}

namespace detail {
TransportStats ClientAccess::transport_stats(const ProxyClient& client) noexcept {
  return client.impl_ ? client.impl_->transport_stats() : TransportStats{};
}
}  // namespace detail

const Config& ProxyClient::config() const noexcept {
  static const Config kEmpty;
  return impl_ ? impl_->config() : kEmpty;
}

}  // namespace glmproxy
