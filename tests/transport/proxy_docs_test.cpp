// What docs/transport.md says about proxies that tests/transport/proxy_client_test.cpp does not
// show already: the scheme picks the kind of proxy, an https upstream goes through an HTTP proxy
// by CONNECT, and a URL's user:pass@ is the proxy's login. Against a loopback tunnelling proxy
// (tests/support/tunnel_proxy.hpp) in front of the mock upstream.

#include <catch2/catch.hpp>
#include <chrono>
#include <string>

#include "glmproxy/mock/mock_upstream.hpp"
#include "glmproxy/proxy_client.hpp"
#include "support/docs_support.hpp"
#include "support/mock_client.hpp"
#include "support/tls_files.hpp"
#include "support/tunnel_proxy.hpp"

using glmproxy::Config;
using glmproxy::ProxyClient;
using glmproxy::mock::MockOptions;
using glmproxy::mock::MockUpstream;
using namespace std::chrono_literals;

using test_support::config_for;
using test_support::hello;
using test_support::make_client;
using test_support::start_mock;
using test_support::TunnelProxy;

namespace {

std::unique_ptr<TunnelProxy> start_tunnel(bool socks5_login = false,
                                          std::chrono::milliseconds reply_delay = 0ms) {
  auto proxy = TunnelProxy::start(socks5_login, reply_delay);
  REQUIRE(proxy != nullptr);
  return proxy;
}

// `config` aimed at `host` (instead of 127.0.0.1) on the mock's port.
void aim_at(Config& config, const MockUpstream& server, const std::string& host) {
  const std::string origin = "http://" + host + ":" + std::to_string(server.port());
  config.upstream.openai_base_url = origin + "/api/paas/v4";
  config.upstream.anthropic_base_url = origin + "/api/anthropic";
}

}  // namespace

// transport.md, Proxies: "HTTP proxies, which tunnel an https upstream with CONNECT and forward an
// http one"; "`user:pass@` becomes `Proxy-Authorization: Basic` ..., never an upstream header."
TEST_CASE("docs: an https upstream goes through an HTTP proxy by CONNECT", "[docs][proxy]") {
  const auto& cert = test_support::test_certificate();
  MockOptions options;
  options.tls_cert_file = cert.cert_file;
  options.tls_key_file = cert.key_file;
  auto server = start_mock(options);
  REQUIRE(server->base_url().starts_with("https://"));
  auto proxy = start_tunnel();
  Config config = config_for(*server);
  config.upstream.ca_file = cert.cert_file;
  config.upstream.proxy = "http://alice:proxy-pw-42@127.0.0.1:" + std::to_string(proxy->port());
  ProxyClient client = make_client(config);
  auto reply = client.complete(hello());
  INFO((reply ? "" : reply.error().describe()));
  REQUIRE(reply);
  const auto tunnels = proxy->tunnels();
  REQUIRE(tunnels.size() == 1);
  CHECK(tunnels[0].kind == "CONNECT");
  CHECK(tunnels[0].target == "127.0.0.1:" + std::to_string(server->port()));
  CHECK(tunnels[0].authorization == "Basic YWxpY2U6cHJveHktcHctNDI=");  // alice:proxy-pw-42
  REQUIRE(server->recorded().size() == 1);
  CHECK_FALSE(server->recorded()[0].header("proxy-authorization"));
  CHECK(server->recorded()[0].header("authorization") == "Bearer sk-test-key-123456");
}

// transport.md, Proxies: "`socks4://`, `socks4a://`, `socks5://`, `socks5h://` (the proxy
// resolves the name)".
TEST_CASE("docs: socks4, socks4a, socks5 and socks5h proxies, names resolved where promised",
          "[docs][proxy]") {
  auto server = start_mock();
  auto proxy = start_tunnel();
  struct Case {
    std::string scheme, host;
    bool by_name;
  };
  // The a/h variants hand the name to the proxy; the others resolve it first (an address here).
  for (const Case& c : {Case{"socks4", "127.0.0.1", false}, Case{"socks4a", "localhost", true},
                        Case{"socks5", "127.0.0.1", false}, Case{"socks5h", "localhost", true}}) {
    INFO(c.scheme);
    server->reset();
    Config config = config_for(*server);
    aim_at(config, *server, c.host);
    config.upstream.proxy = proxy->url(c.scheme);
    ProxyClient client = make_client(config);
    const auto before = proxy->tunnels().size();
    auto reply = client.complete(hello());
    INFO((reply ? "" : reply.error().describe()));
    REQUIRE(reply);
    const auto tunnels = proxy->tunnels();
    REQUIRE(tunnels.size() == before + 1);
    CHECK(tunnels.back().kind == c.scheme.substr(0, c.scheme == "socks4a" ? 7 : 6));
    CHECK(tunnels.back().by_name == c.by_name);
    CHECK(tunnels.back().target == c.host + ":" + std::to_string(server->port()));
    CHECK(server->stats().requests == 1);
  }
}

// transport.md, Proxies: "`user:pass@` becomes ... the SOCKS login, never an upstream header."
TEST_CASE("docs: user:pass@ in a socks5 proxy URL is the SOCKS login", "[docs][proxy]") {
  auto server = start_mock();
  auto proxy = start_tunnel(/*socks5_login=*/true);
  Config config = config_for(*server);
  config.upstream.proxy = "socks5://bob:socks-pw-7@127.0.0.1:" + std::to_string(proxy->port());
  ProxyClient client = make_client(config);
  auto reply = client.complete(hello());
  INFO((reply ? "" : reply.error().describe()));
  REQUIRE(reply);
  const auto tunnels = proxy->tunnels();
  REQUIRE(tunnels.size() == 1);
  CHECK(tunnels[0].user == "bob");
  CHECK(tunnels[0].password == "socks-pw-7");
  CHECK_FALSE(server->recorded().back().header("proxy-authorization"));
}

// transport.md, Timeouts: `GLMPROXY_FIRST_BYTE_TIMEOUT_MS` is measured from "the request being
// sent (curl's pre-transfer time), until the first response byte" — not from the attempt's start:
// a slow connect (here, a proxy taking 800 ms to open its tunnel) does not count.
TEST_CASE("docs: the first-byte timeout starts when the request is sent, not before",
          "[docs][proxy][timeout]") {
  auto server = start_mock();
  auto proxy = start_tunnel(false, 800ms);
  Config config = config_for(*server);
  config.upstream.proxy = proxy->url("socks5");
  config.timeouts.first_byte = 400ms;
  config.timeouts.connect = 5000ms;
  ProxyClient client = make_client(config);
  glmproxy::mock::Fault thinking;  // answered 200 ms after it was sent: within the 400 ms
  thinking.delay_before_headers = 200ms;
  server->add_fault(thinking);
  auto reply = client.complete(hello());
  INFO((reply ? "" : reply.error().describe()));
  REQUIRE(reply);
  CHECK(reply->attempts == 1);
  // And it still holds once the request is out.
  glmproxy::mock::Fault slow;
  slow.delay_before_headers = 3s;
  server->add_fault(slow);
  auto slow_reply = client.complete(test_support::numbered(1));
  REQUIRE_FALSE(slow_reply);
  CHECK_THAT(slow_reply.error().message, Catch::StartsWith("first byte timeout"));
}

// transport.md, Proxies: "`http://` and `https://` (TLS to the proxy itself) HTTP proxies"; TLS:
// "The trusted CAs are the system store, or `GLMPROXY_CA_FILE` ... and/or `GLMPROXY_CA_PATH`" —
// for an HTTPS proxy's own certificate too.
TEST_CASE("docs: an https:// proxy speaks TLS to the proxy, verified with GLMPROXY_CA_FILE",
          "[docs][proxy][tls]") {
  const auto& cert = test_support::test_certificate();
  MockOptions options;
  options.tls_cert_file = cert.cert_file;
  options.tls_key_file = cert.key_file;
  auto server = start_mock(options);
  auto proxy = TunnelProxy::start(false, 0ms, cert.cert_file, cert.key_file);
  REQUIRE(proxy != nullptr);
  Config config = config_for(*server);
  config.upstream.proxy = proxy->url("https");
  SECTION("trusted through GLMPROXY_CA_FILE: the request goes through the TLS tunnel") {
    config.upstream.ca_file = cert.cert_file;
    ProxyClient client = make_client(config);
    auto reply = client.complete(hello());
    INFO((reply ? "" : reply.error().describe()));
    REQUIRE(reply);
    const auto tunnels = proxy->tunnels();
    REQUIRE(tunnels.size() == 1);
    CHECK(tunnels[0].kind == "CONNECT");
    CHECK(server->stats().requests == 1);
  }
  SECTION("not trusted: the proxy's certificate is refused, nothing is sent") {
    ProxyClient client = make_client(config);
    auto reply = client.complete(hello());
    REQUIRE_FALSE(reply);
    INFO(reply.error().describe());
    CHECK(reply.error().code == glmproxy::ErrorCode::ConnectionFailed);
    CHECK_THAT(reply.error().message, Catch::Contains("(or the HTTPS proxy's) TLS certificate"));
    CHECK(reply.error().upstream_code == "tls_certificate");
    CHECK_FALSE(reply.error().retryable());
    CHECK(proxy->tunnels().empty());
    CHECK(server->stats().requests == 0);
  }
}
