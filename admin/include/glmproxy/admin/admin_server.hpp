#pragma once

#include <memory>
#include <string>

#include "glmproxy/admin/export.hpp"
#include "glmproxy/config.hpp"
#include "glmproxy/error.hpp"
#include "glmproxy/export.hpp"
#include "glmproxy/proxy_client.hpp"

namespace glmproxy::admin {

/// The optional admin endpoint (target glmproxy::admin): a small HTTP server on a loopback
/// port that serves one client's metrics, profiles and a live dashboard:
///   GET /dashboard               one self-contained HTML page that refreshes itself
///   GET /api/metrics/prometheus  ProxyClient::prometheus_text() (text format 0.0.4)
///   GET /api/metrics/system      MetricsSnapshot::to_json()
///   GET /profiling               ProfilingReport::to_json(); ?slowest=N (default 10);
///                                ?id=ID: that request's RequestProfile (404 if not kept)
/// With a token (GLMPROXY_ADMIN_TOKEN) every request must carry `Authorization: Bearer TOKEN`
/// or `?token=TOKEN` (the dashboard passes its own query's token on to the API); otherwise 401.
///
/// Requests whose Host header is not a loopback name (or the configured host) get 403: a web
/// page that points a DNS name at 127.0.0.1 cannot read the endpoint through the browser.
///
/// Thread safety: thread-safe. A listener thread and four worker threads of the server's own
/// serve requests; they read the client through its thread-safe const calls. The client must
/// outlive the server: destroy (or stop()) the server first.
/// Example:
///   auto client = glmproxy::ProxyClient::create(*glmproxy::Config::from_env());
///   auto admin = glmproxy::admin::AdminServer::start(*client);  // GLMPROXY_ADMIN_ENABLED=1
///   if (admin) log("dashboard: " + admin->url() + "/dashboard");
class GLMPROXY_ADMIN_API AdminServer {
 public:
  /// Serves `client` as its configuration's AdminConfig says. InvalidArgument when
  /// GLMPROXY_ADMIN_ENABLED is false.
  static Result<AdminServer> start(const ProxyClient& client);
  /// Serves `client` with `options` (its `enabled` is not looked at). InvalidConfig for a
  /// host that is not loopback; ConnectionFailed when the address cannot be bound.
  static Result<AdminServer> start(const ProxyClient& client, const AdminConfig& options);

  AdminServer(AdminServer&&) noexcept;
  AdminServer& operator=(AdminServer&&) noexcept;
  AdminServer(const AdminServer&) = delete;
  AdminServer& operator=(const AdminServer&) = delete;
  ~AdminServer();  ///< stop()

  /// The port it listens on (the chosen one when configured with 0).
  int port() const noexcept;
  /// "http://HOST:PORT" (IPv6 hosts in brackets).
  std::string url() const;
  /// Stops listening and waits for requests in progress; idempotent.
  void stop() noexcept;

 private:
  class Impl;
  GLMPROXY_LOCAL explicit AdminServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace glmproxy::admin
