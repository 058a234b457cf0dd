// TLS and HTTP/2 against servers on 127.0.0.1 the tests start themselves: the mock upstream in
// its TLS mode (certificate verification, GLMPROXY_CA_FILE / GLMPROXY_CA_PATH, session reuse)
// and nginx as an HTTP/2 TLS front to the plain mock (multiplexing, a cancelled stream).

#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <future>
#include <string>
#include <thread>
#include <vector>

#include "glmproxy/mock/mock_upstream.hpp"
#include "glmproxy/proxy_client.hpp"
#include "support/mock_client.hpp"
#include "support/nginx_front.hpp"
#include "support/tls_files.hpp"

using glmproxy::ChatRequest;
using glmproxy::ChatResponse;
using glmproxy::Config;
using glmproxy::ErrorCode;
using glmproxy::Result;
using glmproxy::StreamEvent;
using glmproxy::mock::MockOptions;
using glmproxy::mock::MockUpstream;
using namespace std::chrono_literals;

using test_support::make_client;
using test_support::NginxFront;
using test_support::numbered;
using test_support::start_mock;
using test_support::test_certificate;

namespace {

// The mock upstream speaking HTTPS with the test certificate.
std::unique_ptr<MockUpstream> start_tls_mock(MockOptions options = {}) {
  const auto& cert = test_certificate();
  options.tls_cert_file = cert.cert_file;
  options.tls_key_file = cert.key_file;
  std::string error;
  auto server = MockUpstream::start(options, &error);
  INFO(error);
  REQUIRE(server != nullptr);
  REQUIRE(server->base_url().starts_with("https://127.0.0.1:"));
  return server;
}

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

std::string describe(const Result<ChatResponse>& r) { return r ? "" : r.error().describe(); }

}  // namespace

TEST_CASE("tls: an unverifiable certificate fails at once, naming the CA knobs", "[tls]") {
  auto server = start_tls_mock();
  Config config = config_for_url(server->base_url());  // the system CA store only
  auto client = make_client(config);
  const auto start = std::chrono::steady_clock::now();
  Result<ChatResponse> reply = client.complete(numbered(1));
  const auto took = std::chrono::steady_clock::now() - start;
  REQUIRE_FALSE(reply);
  const glmproxy::Error& e = reply.error();
  INFO(e.describe());
  CHECK(e.code == ErrorCode::ConnectionFailed);
  CHECK(e.upstream_code == "tls_certificate");
  CHECK_FALSE(e.retryable());
  CHECK_THAT(e.message, Catch::Contains("certificate could not be verified"));
  CHECK_THAT(e.message, Catch::Contains("GLMPROXY_CA_FILE"));
  CHECK_THAT(e.message, Catch::Contains("GLMPROXY_CA_PATH"));
  // One handshake attempt: not retried (GLMPROXY_MAX_ATTEMPTS is 3), so no backoff either.
  CHECK(server->stats().connections_accepted == 1);
  CHECK(server->stats().tls_handshakes == 0);  // the client gave up inside it
  CHECK(server->stats().requests == 0);
  const auto m = client.metrics();
  CHECK(m.upstream.attempts == 1);
  CHECK(m.upstream.retries == 0);
  CHECK(m.upstream.tls_handshakes == 0);
  CHECK(took < 5s);
}

TEST_CASE("tls: GLMPROXY_CA_FILE or GLMPROXY_CA_PATH trusts the upstream's CA", "[tls]") {
  auto server = start_tls_mock();
  const auto& cert = test_certificate();
  Config config = config_for_url(server->base_url());
  SECTION("a CA file") { config.upstream.ca_file = cert.cert_file; }
  SECTION("a hashed CA directory") { config.upstream.ca_path = cert.ca_dir; }
  SECTION("both, read from the environment") {
    auto loaded = Config::from_env([&](std::string_view name) -> std::optional<std::string> {
      if (name == "GLMPROXY_CA_FILE") return cert.cert_file;
      if (name == "GLMPROXY_CA_PATH") return cert.ca_dir;
      if (name == "ZAI_API_BASE") return server->base_url() + "/api/paas/v4";
      if (name == "ZAI_API_KEY") return std::string("sk-test-key-123456");
      return std::nullopt;
    });
    INFO((loaded ? "" : loaded.error().describe()));
    REQUIRE(loaded);
    config = *loaded;
  }
  auto client = make_client(config);
  Result<ChatResponse> reply = client.complete(numbered(1));
  INFO(describe(reply));
  REQUIRE(reply);
  CHECK(reply->content == MockOptions{}.reply_text);
  CHECK(reply->attempts == 1);
  CHECK(server->stats().tls_handshakes == 1);
  CHECK(client.metrics().upstream.tls_handshakes == 1);
}

TEST_CASE("tls: a CA file that is not the upstream's still fails, not retried", "[tls]") {
  auto server = start_tls_mock();
  test_support::TempDir dir;
  REQUIRE(dir.ok());
  // A second, unrelated self-signed CA.
  const std::string other = dir.file("other.pem");
  const int made = test_support::run_shell(
      "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2"
      " -subj '/CN=someone else' -addext 'basicConstraints=critical,CA:TRUE' -keyout '" +
          dir.file("other.key") + "' -out '" + other + "'",
      dir.file("openssl.log"));
  INFO(test_support::read_text_file(dir.file("openssl.log")));
  REQUIRE(made == 0);
  Config config = config_for_url(server->base_url());
  config.upstream.ca_file = other;
  auto client = make_client(config);
  Result<ChatResponse> reply = client.complete(numbered(1));
  REQUIRE_FALSE(reply);
  CHECK(reply.error().upstream_code == "tls_certificate");
  CHECK_THAT(reply.error().message, Catch::Contains(other));  // says which CA file was used
  CHECK(server->stats().connections_accepted == 1);
}

TEST_CASE("tls: sessions are resumed across fresh connections, kept-alive ones need one", "[tls]") {
  auto server = start_tls_mock();
  Config config = config_for_url(server->base_url());
  config.upstream.ca_file = test_certificate().cert_file;
  SECTION("DISABLE_CONNECTION_POOL: a handshake per request, resumed after the first") {
    config.pool.disabled = true;
    auto client = make_client(config);
    for (int i = 0; i < 3; ++i) {
      Result<ChatResponse> reply = client.complete(numbered(i));
      INFO(describe(reply));
      REQUIRE(reply);
    }
    const auto s = server->stats();
    CHECK(s.connections_accepted == 3);
    CHECK(s.tls_handshakes == 3);
    CHECK(s.tls_resumed >= 2);  // the share handle keeps the session for the next connection
    CHECK(client.metrics().upstream.tls_handshakes == 3);
  }
  SECTION("with the pool: one connection, one handshake") {
    auto client = make_client(config);
    for (int i = 0; i < 3; ++i) {
      Result<ChatResponse> reply = client.complete(numbered(i));
      INFO(describe(reply));
      REQUIRE(reply);
    }
    const auto s = server->stats();
    CHECK(s.connections_accepted == 1);
    CHECK(s.tls_handshakes == 1);
    CHECK(s.requests == 3);
    CHECK(client.metrics().upstream.tls_handshakes == 1);
  }
}

TEST_CASE("tls: a stream over TLS arrives whole", "[tls]") {
  MockOptions options;
  options.stream_chunks = 16;
  options.reply_text = std::string(20'000, 'x');  // several TLS records
  auto server = start_tls_mock(options);
  Config config = config_for_url(server->base_url());
  config.upstream.ca_file = test_certificate().cert_file;
  auto client = make_client(config);
  std::string text;
  Result<ChatResponse> reply = client.stream(numbered(1), [&](const StreamEvent& e) {
    if (e.type == StreamEvent::Type::Text) text += e.text;
    return true;
  });
  INFO(describe(reply));
  REQUIRE(reply);
  CHECK(text == options.reply_text);
}

TEST_CASE("http2: concurrent requests share one multiplexed TLS connection", "[tls][http2]") {
  auto mock = start_mock();
  NginxFront front(mock->port(), test_certificate());
  Config config = config_for_url(front.base_url());
  config.upstream.ca_file = test_certificate().cert_file;
  config.pool.max_connections = 8;
  auto client = make_client(config);
  constexpr int kRequests = 8;
  std::vector<std::promise<Result<ChatResponse>>> promises(kRequests);
  std::vector<std::future<Result<ChatResponse>>> futures;
  for (auto& p : promises) futures.push_back(p.get_future());
  for (int i = 0; i < kRequests; ++i) {
    client.complete_async(numbered(i), [&promises, i](Result<ChatResponse> r) {
      promises[static_cast<std::size_t>(i)].set_value(std::move(r));
    });
  }
  for (auto& f : futures) {
    REQUIRE(f.wait_for(30s) == std::future_status::ready);
    Result<ChatResponse> r = f.get();
    INFO(describe(r));
    CHECK(r);
  }
  const auto lines = front.access_log(kRequests);
  INFO(front.error_log());
  REQUIRE(lines.size() == kRequests);
  for (const auto& l : lines) {
    CHECK(l.protocol == "HTTP/2.0");
    CHECK(l.status == "200");
  }
  CHECK(NginxFront::connections(lines).size() == 1);  // multiplexed, not 8 connections
  CHECK(client.metrics().upstream.tls_handshakes == 1);
  CHECK(mock->stats().chat_requests == kRequests);
}

TEST_CASE("http2: cancelling one of two streams resets only that stream", "[tls][http2]") {
  MockOptions options;
  options.reply_text = "one two three four five six seven eight nine ten";
  options.stream_chunks = 10;
  options.stream_event_delay = 40ms;  // both streams are on the wire together for ~0.4 s
  auto mock = start_mock(options);
  NginxFront front(mock->port(), test_certificate());
  Config config = config_for_url(front.base_url());
  config.upstream.ca_file = test_certificate().cert_file;
  auto client = make_client(config);

  std::atomic<int> cancelled_texts{0};
  std::string full_text;
  Result<ChatResponse> cancelled = glmproxy::Error{};
  Result<ChatResponse> complete = glmproxy::Error{};
  std::thread a([&] {
    cancelled = client.stream(numbered(1), [&](const StreamEvent& e) {
      if (e.type != StreamEvent::Type::Text) return true;
      ++cancelled_texts;
      return false;  // cancel at the first text delta
    });
  });
  std::thread b([&] {
    complete = client.stream(numbered(2), [&](const StreamEvent& e) {
      if (e.type == StreamEvent::Type::Text) full_text += e.text;
      return true;
    });
  });
  a.join();
  b.join();
  REQUIRE_FALSE(cancelled);
  CHECK(cancelled.error().code == ErrorCode::Cancelled);
  CHECK(cancelled_texts == 1);
  INFO(describe(complete));
  REQUIRE(complete);
  CHECK(full_text == options.reply_text);
  CHECK(complete->content == options.reply_text);

  // The connection outlived the reset stream: the next request goes over it.
  Result<ChatResponse> next = client.complete(numbered(3));
  INFO(describe(next));
  REQUIRE(next);
  const auto lines = front.access_log(3);
  INFO(front.error_log());
  REQUIRE(lines.size() == 3);
  for (const auto& l : lines) CHECK(l.protocol == "HTTP/2.0");
  CHECK(NginxFront::connections(lines).size() == 1);
  CHECK(client.metrics().upstream.tls_handshakes == 1);
}
