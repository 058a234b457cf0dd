#pragma once

// Shared by the tests that drive a ProxyClient against the in-process mock upstream.

#include <catch2/catch.hpp>
#include <chrono>
#include <cstddef>
#include <memory>
#include <string>
#include <utility>

#include "glmproxy/mock/mock_upstream.hpp"
#include "glmproxy/proxy_client.hpp"

namespace test_support {

/// A mock upstream on a free loopback port (fails the test case when it cannot start).
inline std::unique_ptr<glmproxy::mock::MockUpstream> start_mock(
    glmproxy::mock::MockOptions options = {}) {
  auto server = glmproxy::mock::MockUpstream::start(options);
  REQUIRE(server != nullptr);
  return server;
}

inline std::unique_ptr<glmproxy::mock::MockUpstream> start_mock(std::size_t record_limit) {
  glmproxy::mock::MockOptions options;
  options.record_limit = record_limit;
  return start_mock(options);
}

/// A Config aimed at `server` (both protocols), with a test key and short retry backoff.
inline glmproxy::Config config_for(const glmproxy::mock::MockUpstream& server) {
  using namespace std::chrono_literals;
  glmproxy::Config c;
  c.upstream.api_key = "sk-test-key-123456";
  c.upstream.openai_base_url = server.base_url() + "/api/paas/v4";
  c.upstream.anthropic_base_url = server.base_url() + "/api/anthropic";
  c.retry.base_delay = 10ms;
  c.retry.max_delay = 50ms;
  return c;
}

/// A distinct chat request ("request <i>"): identical requests in flight at once would share one
/// upstream call (coalescing is on by default). `request_id` is sent as X-Request-ID.
inline glmproxy::ChatRequest numbered(int i, std::string request_id = {}) {
  glmproxy::ChatRequest r;
  r.messages = {{"user", "request " + std::to_string(i)}};
  r.request_id = std::move(request_id);
  return r;
}

/// ProxyClient::create() that fails the test case, with the reason, when it fails.
inline glmproxy::ProxyClient make_client(const glmproxy::Config& config) {
  auto client = glmproxy::ProxyClient::create(config);
  INFO((client ? "" : client.error().describe()));
  REQUIRE(client);
  return std::move(*client);
}

}  // namespace test_support
