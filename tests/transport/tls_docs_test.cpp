// What docs/transport.md says about TLS and HTTP/2 that tests/transport/tls_test.cpp does not
// show already, one test per statement, against the mock upstream (plain, or behind nginx as an
// HTTP/2 TLS front). Each test quotes what it checks; docs/transport.md's table lists them.

#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <string>
#include <vector>

#include "glmproxy/mock/mock_upstream.hpp"
#include "glmproxy/proxy_client.hpp"
#include "support/docs_support.hpp"
#include "support/mock_client.hpp"
#include "support/nginx_front.hpp"
#include "support/tls_files.hpp"

using glmproxy::ChatResponse;
using glmproxy::Config;
using glmproxy::ErrorCode;
using glmproxy::ProxyClient;
using glmproxy::Result;
using glmproxy::mock::Fault;
using namespace std::chrono_literals;

using test_support::eventually;
using test_support::make_client;
using test_support::NginxFront;
using test_support::numbered;
using test_support::start_mock;
using test_support::test_certificate;

namespace {

// A Config for `base_url` (an https:// origin), as test_support::config_for does for the mock.
Config config_for_url(const std::string& base_url) {
  Config c;
  c.upstream.api_key = "sk-test-key-123456";
  c.upstream.openai_base_url = base_url + "/api/paas/v4";
  c.upstream.anthropic_base_url = base_url + "/api/anthropic";
  c.retry.base_delay = 10ms;
  c.retry.max_delay = 50ms;
  return c;
}

// The mock upstream speaking HTTPS (HTTP/1.1 only) with the test certificate.
std::unique_ptr<glmproxy::mock::MockUpstream> start_tls_mock() {
  glmproxy::mock::MockOptions options;
  options.tls_cert_file = test_certificate().cert_file;
  options.tls_key_file = test_certificate().key_file;
  auto server = start_mock(options);
  REQUIRE(server->base_url().starts_with("https://"));
  return server;
}

}  // namespace

// transport.md, HTTP/2: "Each `https://` request (`HEAD` aside) sets `CURLOPT_PIPEWAIT` ...
// (against an HTTP/1.1 TLS server this costs the waiting transfers one handshake's time, once)":
// they wait for the first connection to say it does not multiplex, then open their own.
TEST_CASE("docs: concurrent https requests to an HTTP/1.1 server still run at once",
          "[docs][tls]") {
  auto server = start_tls_mock();
  Fault slow;
  slow.delay_before_headers = 1000ms;
  slow.times = 0;
  server->add_fault(slow);
  Config config = config_for_url(server->base_url());
  config.upstream.ca_file = test_certificate().cert_file;
  config.pool.max_connections = 4;
  ProxyClient client = make_client(config);
  std::atomic<int> done{0};
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < 4; ++i) {
    client.complete_async(numbered(i), [&](Result<ChatResponse> r) { done.fetch_add(r ? 1 : 0); });
  }
  REQUIRE(eventually([&] { return done.load() == 4; }, 30s));
  const auto took = std::chrono::steady_clock::now() - start;
  CHECK(server->stats().connections_accepted == 4);
  CHECK(took < 3500ms);  // together, not one after another (4 s)
}

// transport.md, TLS: "Other TLS failures (`CURLE_SSL_CONNECT_ERROR`, a reset mid-handshake) stay
// retryable connection failures."
TEST_CASE("docs: a TLS handshake that fails (not the certificate) is a retryable failure",
          "[docs][tls]") {
  auto server = start_mock();  // plain HTTP: it answers a ClientHello with an HTTP 400
  const std::string plain = server->base_url();
  REQUIRE(plain.starts_with("http://"));
  Config config = config_for_url("https://" + plain.substr(7));
  ProxyClient client = make_client(config);
  auto reply = client.complete(numbered(1));
  REQUIRE_FALSE(reply);
  const glmproxy::Error& e = reply.error();
  INFO(e.describe());
  CHECK(e.code == ErrorCode::ConnectionFailed);
  CHECK(e.upstream_code != "tls_certificate");
  CHECK(e.retryable());
  CHECK(client.metrics().upstream.attempts == 3);  // GLMPROXY_MAX_ATTEMPTS: each one tried
  CHECK(server->stats().connections_accepted == 3);
}

// transport.md, HTTP/2: "`POOL_WARM`'s `HEAD` requests do not wait either, so they open their own
// connections."
TEST_CASE("docs: POOL_WARM over HTTP/2 opens a connection per HEAD", "[docs][tls][http2]") {
  auto mock = start_mock();
  NginxFront front(mock->port(), test_certificate());
  Config config = config_for_url(front.base_url());
  config.upstream.ca_file = test_certificate().cert_file;
  config.pool.warm = true;
  config.pool.min_connections = 3;
  ProxyClient client = make_client(config);
  const auto lines = front.access_log(3);
  INFO(front.error_log());
  REQUIRE(lines.size() == 3);
  for (const auto& l : lines) {
    CHECK(l.protocol == "HTTP/2.0");
    CHECK(l.uri == "/api/paas/v4");
  }
  CHECK(NginxFront::connections(lines).size() == 3);
}

// transport.md, HTTP/2: "`pool.open` / `connections_opened` count sockets, so under HTTP/2 they
// stay small while `pool.in_use` counts transfers."
TEST_CASE("docs: under HTTP/2 pool.in_use counts transfers and pool.open sockets",
          "[docs][tls][http2]") {
  auto mock = start_mock();
  Fault slow;
  slow.delay_before_headers = 2s;
  slow.times = 0;
  mock->add_fault(slow);
  NginxFront front(mock->port(), test_certificate());
  Config config = config_for_url(front.base_url());
  config.upstream.ca_file = test_certificate().cert_file;
  config.pool.max_connections = 6;
  ProxyClient client = make_client(config);
  std::atomic<int> done{0};
  for (int i = 0; i < 6; ++i) {
    client.complete_async(numbered(i), [&](Result<ChatResponse> r) { done.fetch_add(r ? 1 : 0); });
  }
  glmproxy::MetricsSnapshot seen;
  REQUIRE(eventually([&] {
    seen = client.metrics();
    return seen.pool.in_use == 6;
  }));
  CHECK(seen.pool.open == 1);
  CHECK(seen.pool.connections_opened == 1);
  REQUIRE(eventually([&] { return done.load() == 6; }, 30s));
}
