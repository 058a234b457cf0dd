// glmproxy::admin::AdminServer over real HTTP: each endpoint, the bearer token, off by default,
// loopback only, a port in use, and no API key in anything it serves.

#include <simdjson.h>

#include <catch2/catch.hpp>
#include <string>

#include "glmproxy/admin/admin_server.hpp"
#include "support/mock_client.hpp"
#include "support/raw_http.hpp"

namespace {

using glmproxy::admin::AdminServer;
using glmproxy::test::RawClient;
using glmproxy::test::RawResponse;

RawResponse get(const std::string& url, const std::string& token = {}) {
  RawClient http;
  std::vector<std::string> headers;
  if (!token.empty()) headers.push_back("Authorization: Bearer " + token);
  return http.perform("GET", url, nullptr, headers);
}

glmproxy::ChatRequest numbered(int i) {
  return test_support::numbered(i, "admin-" + std::to_string(i));
}

}  // namespace

TEST_CASE("admin: off by default, loopback only, a taken port is a clear error", "[admin]") {
  auto server = test_support::start_mock();
  auto client = test_support::make_client(test_support::config_for(*server));
  auto off = AdminServer::start(client);
  REQUIRE_FALSE(off);
  CHECK(off.error().code == glmproxy::ErrorCode::InvalidArgument);
  CHECK(off.error().message.find("GLMPROXY_ADMIN_ENABLED") != std::string::npos);

  glmproxy::AdminConfig wide;
  wide.host = "0.0.0.0";
  auto refused = AdminServer::start(client, wide);
  REQUIRE_FALSE(refused);
  CHECK(refused.error().code == glmproxy::ErrorCode::InvalidConfig);

  auto first = AdminServer::start(client, glmproxy::AdminConfig{});
  REQUIRE(first);
  CHECK(first->port() > 0);
  glmproxy::AdminConfig same;
  same.port = first->port();
  auto second = AdminServer::start(client, same);
  REQUIRE_FALSE(second);
  CHECK(second.error().code == glmproxy::ErrorCode::ConnectionFailed);
  CHECK(second.error().message.find(std::to_string(first->port())) != std::string::npos);
  first->stop();
  first->stop();  // idempotent
}

TEST_CASE("admin: the endpoints serve the client's metrics, profiles and dashboard", "[admin]") {
  auto server = test_support::start_mock();
  auto c = test_support::config_for(*server);
  c.cache.enabled = true;
  c.profiling.enabled = true;
  c.admin.enabled = true;
  auto client = test_support::make_client(c);
  auto admin = AdminServer::start(client);
  REQUIRE(admin);
  const std::string base = admin->url();
  CHECK(base == "http://127.0.0.1:" + std::to_string(admin->port()));
  for (int i = 0; i < 3; ++i) REQUIRE(client.complete(numbered(i)));
  REQUIRE(client.complete(numbered(0)));  // a cache hit

  const auto prom = get(base + "/api/metrics/prometheus");
  CHECK(prom.status == 200);
  CHECK(prom.has_header("text/plain; version=0.0.4"));
  CHECK(prom.body.find("glm_proxy_requests_total{api=\"openai\",outcome=\"cache_hit\"} 1") !=
        std::string::npos);

  const auto system = get(base + "/api/metrics/system");
  CHECK(system.status == 200);
  CHECK(system.has_header("application/json"));
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  REQUIRE(parser.parse(system.body).get(doc) == simdjson::SUCCESS);
  CHECK(std::uint64_t(doc["requests"]["total"]) == 4);

  const auto profiling = get(base + "/profiling?slowest=2");
  CHECK(profiling.status == 200);
  REQUIRE(parser.parse(profiling.body).get(doc) == simdjson::SUCCESS);
  CHECK(std::uint64_t(doc["recorded"]) == 4);
  CHECK(simdjson::dom::array(doc["slowest"]).size() == 2);

  const auto one = get(base + "/profiling?id=admin-1");
  CHECK(one.status == 200);
  REQUIRE(parser.parse(one.body).get(doc) == simdjson::SUCCESS);
  CHECK(std::string_view(doc["request_id"]) == "admin-1");
  CHECK(get(base + "/profiling?id=nobody").status == 404);
  CHECK(get(base + "/profiling?slowest=lots").status == 400);
  // Digits only: a sign, a space or a value past 10000 is refused, not read as a number.
  for (const char* bad : {"%2B5", "%205", "-1", "5x", "10001", "18446744073709551617"}) {
    CAPTURE(bad);
    CHECK(get(base + "/profiling?slowest=" + bad).status == 400);
  }
  CHECK(get(base + "/profiling?slowest=0").status == 200);

  const auto page = get(base + "/dashboard");
  CHECK(page.status == 200);
  CHECK(page.has_header("text/html"));
  CHECK(page.body.find("<title>glmproxy dashboard</title>") != std::string::npos);
  CHECK(page.body.find("api/metrics/system") != std::string::npos);
  CHECK(get(base + "/").status == 302);
  const auto missing = get(base + "/nothing-here");
  CHECK(missing.status == 404);
  CHECK(missing.body.find("/dashboard") != std::string::npos);

  // DNS rebinding: a browser sent here under another name is refused.
  RawClient http;
  const auto rebound =
      http.perform("GET", base + "/api/metrics/system", nullptr, {"Host: attacker.example"});
  CHECK(rebound.status == 403);
  CHECK(http.perform("GET", base + "/api/metrics/system", nullptr,
                     {"Host: localhost:" + std::to_string(admin->port())})
            .status == 200);

  for (const auto* body : {&prom.body, &system.body, &profiling.body, &page.body}) {
    CHECK(body->find(c.upstream.api_key) == std::string::npos);
  }
}

TEST_CASE("admin: a bearer token guards every endpoint", "[admin]") {
  auto server = test_support::start_mock();
  auto c = test_support::config_for(*server);
  c.admin.enabled = true;
  c.admin.token = "admin-token-abc123";
  auto client = test_support::make_client(c);
  auto admin = AdminServer::start(client);
  REQUIRE(admin);
  const std::string base = admin->url();
  for (const char* path :
       {"/dashboard", "/api/metrics/prometheus", "/api/metrics/system", "/profiling"}) {
    INFO(path);
    const auto refused = get(base + path);
    CHECK(refused.status == 401);
    CHECK(refused.has_header("WWW-Authenticate: Bearer"));
    CHECK(refused.body.find(c.admin.token) == std::string::npos);
    CHECK(get(base + path, "admin-token-abc12").status == 401);    // a prefix
    CHECK(get(base + path, "admin-token-abc1234").status == 401);  // longer
    CHECK(get(base + path, c.admin.token).status == 200);
    CHECK(get(base + path + std::string("?token=") + c.admin.token).status == 200);
  }
}
