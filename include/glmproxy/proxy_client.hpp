#pragma once

#include <functional>
#include <memory>

#include "glmproxy/config.hpp"
#include "glmproxy/error.hpp"
#include "glmproxy/request.hpp"
#include "glmproxy/response.hpp"

namespace glmproxy {

/// The facade: sends chat requests to the configured upstream through a pooled, admission-
/// controlled libcurl multi handle owned by one I/O thread, with retries of transient failures.
///
/// Thread safety: thread-safe. Any number of threads may call complete(), complete_async() and
/// send() at once. Completion callbacks run on the client's I/O thread: keep them short, and do
/// not call the blocking complete()/send() from inside one (that returns InvalidArgument).
/// Destroying the client resolves every request still queued or in flight exactly once
/// (ShuttingDown or Cancelled) and joins the I/O thread.
/// Example:
///   auto client = glmproxy::ProxyClient::create(*glmproxy::Config::from_env());
///   glmproxy::ChatRequest request;
///   request.messages = {{"user", "Say hello."}};
///   if (auto reply = client->complete(request)) use(reply->content);
class ProxyClient {
 public:
  /// Validates `config`, starts the I/O thread and, with POOL_WARM, opens
  /// POOL_MIN_CONNECTIONS connections before returning.
  static Result<ProxyClient> create(Config config);

  ProxyClient(ProxyClient&&) noexcept;
  ProxyClient& operator=(ProxyClient&&) noexcept;
  ProxyClient(const ProxyClient&) = delete;
  ProxyClient& operator=(const ProxyClient&) = delete;
  ~ProxyClient();

  /// Sends `request` and waits for the answer (retries included).
  Result<ChatResponse> complete(const ChatRequest& request);

  /// Sends `request`; `on_done` is called exactly once, on the I/O thread, with the answer or
  /// the error (also for requests refused before they reach the network).
  void complete_async(ChatRequest request, std::function<void(Result<ChatResponse>)> on_done);

  /// Raw pass-through: `request.path` joined to the protocol's base URL, with the configured
  /// authentication. Any HTTP status is returned as an HttpResponse; only failures to get one
  /// (connection, timeout, pool) are Errors. Connection failures are retried, statuses are not.
  Result<HttpResponse> send(const HttpRequest& request);

  /// The effective configuration (after validation).
  const Config& config() const noexcept;

 private:
  class Impl;
  explicit ProxyClient(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace glmproxy
