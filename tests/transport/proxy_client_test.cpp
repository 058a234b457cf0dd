#include "glmproxy/proxy_client.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <future>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "glmproxy/mock/mock_upstream.hpp"
#include "support/docs_support.hpp"
#include "support/http_proxy.hpp"
#include "support/mock_client.hpp"

using glmproxy::ChatRequest;
using glmproxy::ChatResponse;
using glmproxy::Config;
using glmproxy::ErrorCode;
using glmproxy::ProxyClient;
using glmproxy::Result;
using glmproxy::mock::Fault;
using glmproxy::mock::MockUpstream;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

using test_support::config_for;
using test_support::make_client;

namespace {

std::unique_ptr<MockUpstream> start_mock(std::size_t record_limit = 1000) {
  return test_support::start_mock(record_limit);
}

using test_support::hello;  // "Say hello." over a protocol

// Distinct requests: identical ones in flight at once would share one upstream call
// (single-flight coalescing, tested in tests/client/cache_batch_test.cpp).
ChatRequest numbered(int i) {
  ChatRequest r = hello();
  r.messages[0].content += " #" + std::to_string(i);
  return r;
}

}  // namespace

TEST_CASE("complete() over OpenAI keeps the base path and sends Bearer auth", "[client]") {
  auto server = start_mock();
  auto client = make_client(config_for(*server));
  ChatRequest request = hello();
  request.request_id = "req-42";
  Result<ChatResponse> reply = client.complete(request);
  INFO((reply ? "" : reply.error().describe()));
  REQUIRE(reply);
  CHECK(reply->content == "Hello from the glmproxy mock upstream.");
  CHECK(reply->model == "glm-4.7");
  CHECK(reply->finish_reason == "stop");
  CHECK(reply->usage.total_tokens == reply->usage.prompt_tokens + reply->usage.completion_tokens);
  CHECK(reply->usage.completion_tokens > 0);
  CHECK(reply->http_status == 200);
  CHECK(reply->attempts == 1);
  CHECK_FALSE(reply->raw_json.empty());
  auto recorded = server->recorded();
  REQUIRE(recorded.size() == 1);
  CHECK(recorded[0].path == "/api/paas/v4/chat/completions");
  CHECK(recorded[0].header("authorization") == "Bearer sk-test-key-123456");
  CHECK(recorded[0].header("x-request-id") == "req-42");
  CHECK(recorded[0].header("content-type") == "application/json");
}

TEST_CASE("complete() over Anthropic sends x-api-key and anthropic-version", "[client]") {
  auto server = start_mock();
  auto client = make_client(config_for(*server));
  Result<ChatResponse> reply = client.complete(hello(glmproxy::Protocol::Anthropic));
  INFO((reply ? "" : reply.error().describe()));
  REQUIRE(reply);
  CHECK(reply->content == "Hello from the glmproxy mock upstream.");
  CHECK(reply->finish_reason == "end_turn");
  CHECK(reply->usage.prompt_tokens > 0);
  CHECK(reply->usage.total_tokens == reply->usage.prompt_tokens + reply->usage.completion_tokens);
  auto recorded = server->recorded();
  REQUIRE(recorded.size() == 1);
  CHECK(recorded[0].path == "/api/anthropic/v1/messages");
  CHECK(recorded[0].header("x-api-key") == "sk-test-key-123456");
  CHECK(recorded[0].header("anthropic-version") == "2023-06-01");
  CHECK_FALSE(recorded[0].header("authorization"));
}

TEST_CASE("pool: 1000 sequential requests with POOL_MAX_CONNECTIONS=4 reuse connections",
          "[client][pool]") {
  auto server = start_mock(0);
  Config config = config_for(*server);
  config.pool.max_connections = 4;
  auto client = make_client(config);
  for (int i = 0; i < 1000; ++i) REQUIRE(client.complete(hello()));
  auto stats = server->stats();
  CHECK(stats.requests == 1000);
  CHECK(stats.connections_accepted <= 4);
}

TEST_CASE("pool: DISABLE_CONNECTION_POOL opens a connection per request", "[client][pool]") {
  auto server = start_mock(0);
  Config config = config_for(*server);
  config.pool.disabled = true;
  auto client = make_client(config);
  for (int i = 0; i < 1000; ++i) REQUIRE(client.complete(hello()));
  CHECK(server->stats().connections_accepted == 1000);
}

TEST_CASE("pool: POOL_WARM opens POOL_MIN_CONNECTIONS before the first request", "[client][pool]") {
  auto server = start_mock();
  Config config = config_for(*server);
  config.pool.warm = true;
  config.pool.min_connections = 3;
  auto client = make_client(config);
  CHECK(server->stats().connections_accepted == 3);
  CHECK(server->stats().chat_requests == 0);
  for (int i = 0; i < 20; ++i) REQUIRE(client.complete(hello()));
  CHECK(server->stats().connections_accepted == 3);  // the warm connections were reused

  Config cold = config_for(*server);
  server->reset();
  auto cold_client = make_client(cold);
  CHECK(server->stats().connections_accepted == 0);
}

TEST_CASE("pool: 10,000 complete_async calls with POOL_MAX_CONNECTIONS=8 all resolve once",
          "[client][pool]") {
  auto server = start_mock(0);
  Config config = config_for(*server);
  config.pool.max_connections = 8;
  config.pool.acquire_timeout = 60s;
  auto client = make_client(config);
  constexpr int kCalls = 10'000;
  std::vector<std::atomic<int>> calls(kCalls);
  std::atomic<int> ok{0}, done{0};
  for (int i = 0; i < kCalls; ++i) {
    client.complete_async(numbered(i), [&, i](Result<ChatResponse> r) {
      calls[static_cast<std::size_t>(i)].fetch_add(1);
      if (r) ok.fetch_add(1);
      done.fetch_add(1);
    });
  }
  const auto give_up = Clock::now() + 120s;
  while (done.load() < kCalls && Clock::now() < give_up) std::this_thread::sleep_for(5ms);
  CHECK(done.load() == kCalls);
  CHECK(ok.load() == kCalls);
  int twice = 0;
  for (auto& c : calls) twice += c.load() != 1;
  CHECK(twice == 0);
  auto stats = server->stats();
  CHECK(stats.requests == kCalls);
  CHECK(stats.connections_accepted <= 8);
}

TEST_CASE("pool: a request that waits longer than POOL_ACQUIRE_TIMEOUT gets PoolTimeout",
          "[client][pool]") {
  auto server = start_mock();
  Fault slow;
  slow.delay_before_headers = 600ms;
  server->add_fault(slow);
  Config config = config_for(*server);
  config.pool.max_connections = 1;
  config.pool.min_connections = 1;
  config.pool.acquire_timeout = 100ms;
  auto client = make_client(config);
  std::mutex mu;
  std::vector<Result<ChatResponse>> results;
  std::atomic<int> done{0};
  for (int i = 0; i < 3; ++i) {
    client.complete_async(numbered(i), [&](Result<ChatResponse> r) {
      std::lock_guard lock(mu);
      results.push_back(std::move(r));
      done.fetch_add(1);
    });
  }
  while (done.load() < 3) std::this_thread::sleep_for(5ms);
  int ok = 0, pool_timeouts = 0;
  for (auto& r : results) {
    if (r)
      ++ok;
    else if (r.error().code == ErrorCode::PoolTimeout)
      ++pool_timeouts;
  }
  CHECK(ok == 1);
  CHECK(pool_timeouts == 2);
  CHECK(server->stats().chat_requests == 1);
}

TEST_CASE("pool: connections idle longer than the max idle age are not reused", "[client][pool]") {
  auto server = start_mock();
  Config config = config_for(*server);
  config.pool.max_idle = 1000ms;
  config.pool.min_connections = 0;  // nothing kept warm
  auto client = make_client(config);
  REQUIRE(client.complete(hello()));
  REQUIRE(client.complete(hello()));
  CHECK(server->stats().connections_accepted == 1);
  std::this_thread::sleep_for(2100ms);
  REQUIRE(client.complete(hello()));
  CHECK(server->stats().connections_accepted == 2);
  CHECK(server->stats().requests == 3);
}

TEST_CASE("pool: POOL_MIN_CONNECTIONS stay open while the client is idle", "[client][pool]") {
  auto server = start_mock();
  Config config = config_for(*server);
  config.pool.max_idle = 1000ms;
  config.pool.min_connections = 1;
  auto client = make_client(config);
  REQUIRE(client.complete(hello()));
  std::this_thread::sleep_for(2100ms);  // twice the idle age
  REQUIRE(client.complete(hello()));
  auto stats = server->stats();
  CHECK(stats.connections_accepted == 1);       // the connection was kept, not reopened
  CHECK(stats.requests > stats.chat_requests);  // by HEAD refreshes while idle
  for (const auto& r : server->recorded()) {
    if (r.method == "HEAD") CHECK_FALSE(r.header("authorization"));  // no key on refreshes
  }
}

TEST_CASE("a keep-alive connection the server closed does not fail the next request",
          "[client][pool]") {
  auto server = start_mock();
  auto client = make_client(config_for(*server));
  Fault drop;
  drop.close_after_response = true;
  drop.times = 5;
  server->add_fault(drop);
  for (int i = 0; i < 10; ++i) {
    auto reply = client.complete(hello());
    INFO((reply ? "" : reply.error().describe()));
    REQUIRE(reply);
  }
  server->drop_connections();
  std::this_thread::sleep_for(20ms);
  REQUIRE(client.complete(hello()));
}

TEST_CASE("retries: 429 with Retry-After: 1 twice, then 200", "[client][retry]") {
  auto server = start_mock();
  Fault busy;
  busy.status = 429;
  busy.headers = {{"Retry-After", "1"}};
  busy.body = R"({"error":{"code":"1302","message":"High concurrency usage of this API"}})";
  busy.times = 2;
  server->add_fault(busy);
  auto client = make_client(config_for(*server));
  const auto start = Clock::now();
  auto reply = client.complete(hello());
  const auto elapsed = Clock::now() - start;
  INFO((reply ? "" : reply.error().describe()));
  REQUIRE(reply);
  CHECK(elapsed >= 2s);
  CHECK(reply->attempts == 3);
  CHECK(server->stats().chat_requests == 3);
}

TEST_CASE("retries: 400 fails at once, 1113 (no balance) is never retried", "[client][retry]") {
  auto server = start_mock();
  auto client = make_client(config_for(*server));
  Fault bad;
  bad.status = 400;
  server->add_fault(bad);
  auto reply = client.complete(hello());
  REQUIRE_FALSE(reply);
  CHECK(reply.error().code == ErrorCode::InvalidArgument);
  CHECK(reply.error().http_status == 400);
  CHECK(server->stats().chat_requests == 1);

  Fault arrears;
  arrears.status = 429;
  arrears.body = R"({"error":{"code":"1113","message":"Insufficient balance"}})";
  server->add_fault(arrears);
  reply = client.complete(hello());
  REQUIRE_FALSE(reply);
  CHECK(reply.error().upstream_code == "1113");
  CHECK(reply.error().code == ErrorCode::QuotaExceeded);
  CHECK_FALSE(reply.error().retryable());
  CHECK(server->stats().chat_requests == 2);
}

TEST_CASE("retries: 5xx and 529 are retried up to max attempts with backoff", "[client][retry]") {
  auto server = start_mock();
  Config config = config_for(*server);
  auto client = make_client(config);
  for (int status : {500, 503, 529}) {
    server->reset();
    Fault f;
    f.status = status;
    f.times = 2;
    server->add_fault(f);
    auto reply = client.complete(hello());
    INFO(status);
    REQUIRE(reply);
    CHECK(reply->attempts == 3);
    CHECK(server->stats().chat_requests == 3);
  }
  server->reset();
  Fault always;
  always.status = 500;
  always.times = 0;
  server->add_fault(always);
  auto reply = client.complete(hello());
  REQUIRE_FALSE(reply);
  CHECK(reply.error().code == ErrorCode::UpstreamError);
  CHECK(reply.error().http_status == 500);
  CHECK(server->stats().chat_requests == 3);  // GLMPROXY_MAX_ATTEMPTS=3 by default
}

TEST_CASE("retries: a Retry-After longer than the cap is not waited for", "[client][retry]") {
  auto server = start_mock();
  Config config = config_for(*server);
  config.retry.retry_after_cap = 1s;
  auto client = make_client(config);
  Fault later;
  later.status = 429;
  later.headers = {{"Retry-After", "120"}};
  server->add_fault(later);
  const auto start = Clock::now();
  auto reply = client.complete(hello());
  REQUIRE_FALSE(reply);
  CHECK(Clock::now() - start < 1s);
  CHECK(reply.error().code == ErrorCode::RateLimited);
  REQUIRE(reply.error().retry_after);
  CHECK(*reply.error().retry_after == 120s);
  CHECK(server->stats().chat_requests == 1);
}

TEST_CASE("timeouts: first byte, and the overall deadline across attempts", "[client][timeout]") {
  auto server = start_mock();
  Config config = config_for(*server);
  config.timeouts.first_byte = 200ms;
  auto client = make_client(config);
  Fault slow;
  slow.delay_before_headers = 3s;
  server->add_fault(slow);
  auto start = Clock::now();
  auto reply = client.complete(hello());
  REQUIRE_FALSE(reply);
  CHECK(reply.error().code == ErrorCode::Timeout);
  CHECK_THAT(reply.error().message, Catch::Contains("first byte"));
  CHECK(Clock::now() - start < 2s);
  CHECK(server->stats().chat_requests == 1);  // a sent request is not sent again

  Config total = config_for(*server);
  total.timeouts.total = 300ms;
  total.timeouts.connect = 100ms;
  total.retry.base_delay = 1000ms;
  total.retry.max_delay = 1000ms;
  auto short_client = make_client(total);
  server->reset();
  Fault fail;
  fail.status = 503;
  fail.times = 0;
  server->add_fault(fail);
  start = Clock::now();
  reply = short_client.complete(hello());
  REQUIRE_FALSE(reply);
  CHECK(Clock::now() - start < 2s);
}

TEST_CASE("connection failures are retried, then reported", "[client][retry]") {
  // A port with nothing listening: bind a server, note its port, stop it.
  std::string base;
  {
    auto server = start_mock();
    base = server->base_url();
  }
  Config config;
  config.upstream.openai_base_url = base + "/v1";
  config.retry.base_delay = 1ms;
  config.retry.max_delay = 5ms;
  auto client = make_client(config);
  auto reply = client.complete(hello());
  REQUIRE_FALSE(reply);
  CHECK(reply.error().code == ErrorCode::ConnectionFailed);
  CHECK(reply.error().http_status == 0);
}

TEST_CASE("broken upstream bodies give BadResponse and are not retried", "[client]") {
  auto server = start_mock();
  auto client = make_client(config_for(*server));
  Fault cut;
  cut.close_after_body_bytes = 30;
  server->add_fault(cut);
  auto reply = client.complete(hello());
  REQUIRE_FALSE(reply);
  CHECK(reply.error().code == ErrorCode::BadResponse);
  CHECK(server->stats().chat_requests == 1);

  Fault bad;
  bad.malformed_json = true;
  server->add_fault(bad);
  reply = client.complete(hello());
  REQUIRE_FALSE(reply);
  CHECK(reply.error().code == ErrorCode::BadResponse);
  CHECK(reply.error().http_status == 200);
  CHECK(reply.error().message.find("sk-test") == std::string::npos);
}

TEST_CASE("invalid requests are refused before the network, via the callback", "[client]") {
  auto server = start_mock();
  auto client = make_client(config_for(*server));
  ChatRequest empty;
  auto reply = client.complete(empty);
  REQUIRE_FALSE(reply);
  CHECK(reply.error().code == ErrorCode::InvalidArgument);
  CHECK(server->stats().requests == 0);
}

TEST_CASE("shutdown resolves every queued and in-flight request exactly once", "[client]") {
  auto server = start_mock();
  Fault slow;
  slow.delay_before_headers = 5s;
  slow.times = 0;
  server->add_fault(slow);
  std::atomic<int> resolved{0}, cancelled{0}, shutting{0};
  constexpr int kCalls = 50;
  {
    Config config = config_for(*server);
    config.pool.max_connections = 2;
    config.pool.min_connections = 1;
    auto client = make_client(config);
    for (int i = 0; i < kCalls; ++i) {
      client.complete_async(numbered(i), [&](Result<ChatResponse> r) {
        resolved.fetch_add(1);
        if (!r && r.error().code == ErrorCode::Cancelled) cancelled.fetch_add(1);
        if (!r && r.error().code == ErrorCode::ShuttingDown) shutting.fetch_add(1);
      });
    }
    std::this_thread::sleep_for(100ms);
    const auto start = Clock::now();
    // The client goes out of scope with 2 requests in flight and 48 queued.
    (void)start;
  }
  CHECK(resolved.load() == kCalls);
  CHECK(cancelled.load() == 2);
  CHECK(shutting.load() == kCalls - 2);
}

TEST_CASE("send() passes raw requests through, any status is a response", "[client]") {
  auto server = start_mock();
  auto client = make_client(config_for(*server));
  glmproxy::HttpRequest get;
  get.path = "models";
  auto r = client.send(get);
  REQUIRE(r);
  CHECK(r->status == 200);
  CHECK(r->body.find("glm-4.7") != std::string::npos);
  CHECK(server->recorded().back().path == "/api/paas/v4/models");

  get.path = "/no/such/thing";
  r = client.send(get);
  REQUIRE(r);
  CHECK(r->status == 404);

  glmproxy::HttpRequest bad;
  bad.method = "GET\r\nX: y";
  CHECK_FALSE(client.send(bad));
}

TEST_CASE("a blocking call from a completion callback works (callbacks are off the I/O thread)",
          "[client]") {
  auto server = start_mock();
  auto client = make_client(config_for(*server));
  auto inner = std::make_shared<std::promise<std::string>>();
  client.complete_async(hello(), [&client, inner](Result<ChatResponse>) {
    auto r = client.complete(hello());
    inner->set_value(r ? r->content : std::string(to_string(r.error().code)));
  });
  auto future = inner->get_future();
  REQUIRE(future.wait_for(10s) == std::future_status::ready);
  CHECK_FALSE(future.get().empty());
  CHECK(server->stats().chat_requests == 2);
}

TEST_CASE(
    "an executor that runs callbacks inline puts them on the I/O thread: blocking calls "
    "there are refused, not deadlocked",
    "[client]") {
  auto server = start_mock();
  Config config = config_for(*server);
  config.callback_executor = [](std::function<void()> task) { task(); };
  auto client = make_client(config);
  auto inner = std::make_shared<std::promise<ErrorCode>>();
  client.complete_async(hello(), [&client, inner](Result<ChatResponse>) {
    auto r = client.complete(hello());
    inner->set_value(r ? ErrorCode::Internal : r.error().code);
  });
  auto future = inner->get_future();
  REQUIRE(future.wait_for(10s) == std::future_status::ready);
  CHECK(future.get() == ErrorCode::InvalidArgument);
}

TEST_CASE("timeouts: connect timeout names itself and is retried", "[client][timeout]") {
  // A listener whose accept queue is full and never drained: Linux drops further SYNs, so a
  // connect to it hangs until the client's connect timeout.
  int listener = ::socket(AF_INET, SOCK_STREAM, 0);
  REQUIRE(listener >= 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  REQUIRE(::listen(listener, 0) == 0);
  socklen_t len = sizeof addr;
  ::getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &len);
  std::vector<int> fillers;
  for (int i = 0; i < 4; ++i) {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
    fillers.push_back(fd);
  }
  std::this_thread::sleep_for(50ms);

  Config config;
  config.upstream.openai_base_url = "http://127.0.0.1:" + std::to_string(ntohs(addr.sin_port));
  config.timeouts.connect = 200ms;
  config.retry.max_attempts = 2;
  config.retry.base_delay = 1ms;
  config.retry.max_delay = 1ms;
  auto client = make_client(config);
  const auto start = Clock::now();
  auto reply = client.complete(hello());
  const auto elapsed = Clock::now() - start;
  for (int fd : fillers) ::close(fd);
  ::close(listener);
  REQUIRE_FALSE(reply);
  CHECK(reply.error().code == ErrorCode::Timeout);
  CHECK_THAT(reply.error().message, Catch::Contains("connect timeout"));
  CHECK(elapsed >= 400ms);  // two attempts of 200 ms each
  CHECK(elapsed < 3s);
}

TEST_CASE("a callback that keeps resubmitting does not starve other requests or shutdown",
          "[client]") {
  auto server = test_support::start_mock();
  Config c = config_for(*server);
  c.cache.enabled = true;
  ChatRequest hit;
  hit.messages = {{"user", "answered from the cache"}};
  auto stop = std::make_shared<std::atomic<bool>>(false);
  auto rounds = std::make_shared<std::atomic<int>>(0);
  auto ended = std::make_shared<std::promise<void>>();
  {
    ProxyClient client = test_support::make_client(c);
    REQUIRE(client.complete(hit));  // stored: from now on each call is an instant cache hit
    // Each answer (on a callback thread) sends the same request again, until told to stop: an
    // endless chain of callbacks that each submit more work.
    std::function<void(Result<ChatResponse>)> again;
    again = [&client, &again, &hit, stop, rounds, ended](Result<ChatResponse> r) {
      rounds->fetch_add(1);
      if (!r || stop->load()) {
        ended->set_value();
        return;
      }
      client.complete_async(hit, again);
    };
    client.complete_async(hit, again);
    // The chain is running (callbacks off the I/O thread may take a moment to start) ...
    const auto deadline = std::chrono::steady_clock::now() + 10s;
    while (rounds->load() < 5 && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(1ms);
    }
    REQUIRE(rounds->load() >= 5);
    // ... and meanwhile another request needs the I/O thread for a real transfer.
    ChatRequest other;
    other.messages = {{"user", "needs the network"}};
    auto reply = client.complete(other);
    stop->store(true);
    CHECK(reply);
    CHECK(ended->get_future().wait_for(10s) == std::future_status::ready);
    CHECK(rounds->load() >= 5);
  }  // and the client shuts down
}

// --- input checks (issue item 6) ----------------------------------------------------------

TEST_CASE("send() refuses bad methods, headers and paths before anything is sent",
          "[client][send]") {
  auto server = start_mock();
  auto client = make_client(config_for(*server));
  auto refused = [&](const glmproxy::HttpRequest& request) {
    auto r = client.send(request);
    REQUIRE_FALSE(r);
    CHECK(r.error().code == ErrorCode::InvalidArgument);
    return r.error().message;
  };
  glmproxy::HttpRequest request;
  request.path = "models";
  request.method = "GET\r\nX-Injected: 1";
  CHECK(refused(request).find("HttpRequest::method") != std::string::npos);
  request.method = "GET";
  request.headers = {{"X-Fine", "ok"}, {"Authorization", "Bearer sk-leak-me-123\r\nX-Evil: 1"}};
  std::string message = refused(request);
  CHECK(message.find("HttpRequest::headers[1] (Authorization)") != std::string::npos);
  CHECK(message.find("sk-leak-me-123") == std::string::npos);
  request.headers = {{"Bad Name", "v"}};
  CHECK(refused(request).find("HttpRequest::headers[0]: the name") != std::string::npos);
  request.headers.clear();
  for (const char* bad :
       {"../../etc/x", "a/../../models", "%2e%2e/x", "models\r\nX: 1", "models x", "models#frag"}) {
    INFO(bad);
    request.path = bad;
    CHECK(refused(request).find("HttpRequest::path") != std::string::npos);
  }
  CHECK(server->stats().requests == 0);

  // Dot segments that stay under the base path are resolved before the request goes out.
  request.path = "x/./y/../../models";
  auto r = client.send(request);
  REQUIRE(r);
  CHECK(r->status == 200);
  CHECK(server->recorded().back().path == "/api/paas/v4/models");
}

TEST_CASE("a request_id that cannot be a header value is refused, not dropped", "[client]") {
  auto server = start_mock();
  auto client = make_client(config_for(*server));
  ChatRequest request = hello();
  request.request_id = "req-1\r\nX-Injected: 1";
  auto reply = client.complete(request);
  REQUIRE_FALSE(reply);
  CHECK(reply.error().code == ErrorCode::InvalidArgument);
  CHECK(reply.error().message.find("request_id has byte 0x0D at offset 5") != std::string::npos);
  reply = client.stream(request, nullptr);
  REQUIRE_FALSE(reply);
  CHECK(reply.error().code == ErrorCode::InvalidArgument);
  std::promise<Result<ChatResponse>> async;
  client.complete_async(request, [&](Result<ChatResponse> r) { async.set_value(std::move(r)); });
  auto async_reply = async.get_future().get();
  REQUIRE_FALSE(async_reply);
  CHECK(async_reply.error().code == ErrorCode::InvalidArgument);
  glmproxy::EmbeddingRequest embedding;
  embedding.input = {"text"};
  embedding.request_id = "e\n";
  auto vectors = client.embed(embedding);
  REQUIRE_FALSE(vectors);
  CHECK(vectors.error().code == ErrorCode::InvalidArgument);
  CHECK(server->stats().requests == 0);
  // A tab is a header value's own character.
  request.request_id = "req\t2";
  REQUIRE(client.complete(request));
  CHECK(server->recorded().back().header("x-request-id") == "req\t2");
}

// --- base URLs (issue item 7) ---------------------------------------------------------------

TEST_CASE("a query on the base URL lands after the path on the wire", "[client][url]") {
  auto server = start_mock();
  Config config = config_for(*server);
  config.upstream.openai_base_url = server->base_url() + "/api/paas/v4?tenant=abc";
  config.upstream.anthropic_base_url = server->base_url() + "/api/anthropic/?tenant=xyz";
  auto client = make_client(config);
  REQUIRE(client.complete(hello()));
  CHECK(server->recorded().back().path == "/api/paas/v4/chat/completions?tenant=abc");
  REQUIRE(client.complete(hello(glmproxy::Protocol::Anthropic)));
  CHECK(server->recorded().back().path == "/api/anthropic/v1/messages?tenant=xyz");
  glmproxy::EmbeddingRequest embedding;
  embedding.input = {"text"};
  REQUIRE(client.embed(embedding));
  CHECK(server->recorded().back().path == "/api/paas/v4/embeddings?tenant=abc");

  // send(): the base's query first, then the path's.
  glmproxy::HttpRequest get;
  get.path = "models?limit=2";
  auto r = client.send(get);
  REQUIRE(r);
  CHECK(r->status == 200);
  CHECK(server->recorded().back().path == "/api/paas/v4/models?tenant=abc&limit=2");
  get.path = "/models";
  REQUIRE(client.send(get));
  CHECK(server->recorded().back().path == "/api/paas/v4/models?tenant=abc");
}

TEST_CASE("the circuit breaker's message names the host without its credentials",
          "[client][url][secret]") {
  const std::string host = "127.0.0.1:" + std::to_string(test_support::closed_port());

  Config config;
  config.upstream.api_key = "sk-test-key-123456";
  config.upstream.openai_base_url = "http://bob:url-pass-789@" + host + "/v4";
  config.retry.max_attempts = 1;
  config.admission.breaker_failures = 1;
  config.admission.breaker_cooldown = 60'000ms;
  auto client = make_client(config);
  auto first = client.complete(hello());
  REQUIRE_FALSE(first);
  CHECK(first.error().code == ErrorCode::ConnectionFailed);
  CHECK(first.error().message.find("url-pass-789") == std::string::npos);
  auto second = client.complete(hello());
  REQUIRE_FALSE(second);
  CHECK(second.error().upstream_code == "circuit_open");
  INFO(second.error().message);
  CHECK(second.error().message.find("circuit breaker open for http://" + host + ":") !=
        std::string::npos);
  CHECK(second.error().message.find("url-pass-789") == std::string::npos);
  CHECK(second.error().message.find("bob") == std::string::npos);
}

// --- proxies (issue item 12) ----------------------------------------------------------------

namespace {

std::unique_ptr<test_support::HttpProxy> start_proxy() {
  auto proxy = test_support::HttpProxy::start();
  REQUIRE(proxy != nullptr);
  return proxy;
}

// Sets (or, with nullopt, unsets) process environment variables for a test's duration and
// restores them after.
class ScopedEnv {
 public:
  explicit ScopedEnv(const std::map<std::string, std::optional<std::string>>& values) {
    for (const auto& [name, value] : values) {
      if (const char* old = std::getenv(name.c_str()))
        saved_[name] = old;
      else
        saved_[name] = std::nullopt;
      if (value) {
        ::setenv(name.c_str(), value->c_str(), 1);
      } else {
        ::unsetenv(name.c_str());
      }
    }
  }
  ~ScopedEnv() {
    for (const auto& [name, value] : saved_) {
      if (value) {
        ::setenv(name.c_str(), value->c_str(), 1);
      } else {
        ::unsetenv(name.c_str());
      }
    }
  }
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;

 private:
  std::map<std::string, std::optional<std::string>> saved_;
};

// Config::from_env() over a map, aimed at `server`.
Result<Config> from_map(const glmproxy::mock::MockUpstream& server,
                        std::map<std::string, std::string, std::less<>> env) {
  env["ZAI_API_KEY"] = "sk-test-key-123456";
  env["ZAI_API_BASE"] = server.base_url() + "/api/paas/v4";
  env["ANTHROPIC_API_BASE"] = server.base_url() + "/api/anthropic";
  env["GLMPROXY_RETRY_BASE_DELAY_MS"] = "10";
  env["GLMPROXY_RETRY_MAX_DELAY_MS"] = "50";
  return Config::from_env([env](std::string_view name) -> std::optional<std::string> {
    auto it = env.find(name);
    if (it == env.end()) return std::nullopt;
    return it->second;
  });
}

}  // namespace

TEST_CASE("proxy: with GLMPROXY_PROXY set, requests go through the proxy", "[client][proxy]") {
  auto server = start_mock();
  auto proxy = start_proxy();
  Config config = config_for(*server);
  config.upstream.proxy = proxy->url();
  auto client = make_client(config);
  auto reply = client.complete(hello());
  REQUIRE(reply);
  CHECK(reply->content == "Hello from the glmproxy mock upstream.");
  CHECK(proxy->requests() == 1);
  REQUIRE(proxy->targets().size() == 1);
  CHECK(proxy->targets()[0] == server->base_url() + "/api/paas/v4/chat/completions");
  CHECK(server->stats().requests == 1);

  // Credentials in the proxy URL go to the proxy (Basic), not to the upstream.
  Config with_auth = config_for(*server);
  with_auth.upstream.proxy = "http://alice:proxy-pw-42@127.0.0.1:" + std::to_string(proxy->port());
  auto client2 = make_client(with_auth);
  glmproxy::HttpRequest get;
  get.path = "models";
  auto r = client2.send(get);
  REQUIRE(r);
  CHECK(r->status == 200);
  REQUIRE(proxy->requests() == 2);
  CHECK(proxy->proxy_authorizations()[1] == "Basic YWxpY2U6cHJveHktcHctNDI=");  // alice:proxy-pw-42
  CHECK_FALSE(server->recorded().back().header("proxy-authorization"));
  CHECK(with_auth.describe().find("proxy-pw-42") == std::string::npos);
}

TEST_CASE("proxy: http_proxy in the environment is not used by a Config built in code",
          "[client][proxy]") {
  auto server = start_mock();
  auto proxy = start_proxy();
  // libcurl would take these on its own if the transport let it.
  ScopedEnv env({{"http_proxy", proxy->url()},
                 {"HTTP_PROXY", proxy->url()},
                 {"all_proxy", proxy->url()},
                 {"ALL_PROXY", proxy->url()},
                 {"no_proxy", std::nullopt},
                 {"NO_PROXY", std::nullopt}});
  auto client = make_client(config_for(*server));
  REQUIRE(client.complete(hello()));
  CHECK(proxy->requests() == 0);
  CHECK(server->stats().requests == 1);
}

TEST_CASE("proxy: from_env takes http_proxy from the lookup and describe() says so",
          "[client][proxy]") {
  auto server = start_mock();
  auto proxy = start_proxy();
  Result<Config> config = from_map(*server, {{"http_proxy", proxy->url()}});
  REQUIRE(config);
  CHECK(config->upstream.proxy == proxy->url());
  CHECK(config->describe().find("\nGLMPROXY_PROXY=" + proxy->url() + " (from http_proxy)\n") !=
        std::string::npos);
  auto client = make_client(*config);
  REQUIRE(client.complete(hello()));
  CHECK(proxy->requests() == 1);
  CHECK(server->stats().requests == 1);
}

TEST_CASE("proxy: no_proxy=127.0.0.1 sends requests direct", "[client][proxy]") {
  auto server = start_mock();
  auto proxy = start_proxy();
  Result<Config> config =
      from_map(*server, {{"http_proxy", proxy->url()}, {"no_proxy", "127.0.0.1"}});
  REQUIRE(config);
  CHECK(config->upstream.no_proxy == "127.0.0.1");
  auto client = make_client(*config);
  REQUIRE(client.complete(hello()));
  CHECK(proxy->requests() == 0);
  CHECK(server->stats().requests == 1);

  // GLMPROXY_PROXY present but empty: direct, whatever http_proxy says.
  Result<Config> direct = from_map(*server, {{"http_proxy", proxy->url()}, {"GLMPROXY_PROXY", ""}});
  REQUIRE(direct);
  CHECK(direct->describe().find("\nGLMPROXY_PROXY= (direct)\n") != std::string::npos);
  auto direct_client = make_client(*direct);
  REQUIRE(direct_client.complete(hello()));
  CHECK(proxy->requests() == 0);
  CHECK(server->stats().requests == 2);
}
