// metrics(): the pool as requests wait for slots, upstream attempts and bytes, the process's
// memory and CPU, and the JSON form (parsed back with simdjson).

#include <simdjson.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "support/mock_client.hpp"

using namespace std::chrono_literals;

using test_support::numbered;

TEST_CASE("metrics(): pool slots in use, requests waiting, idle connections, acquire wait",
          "[metrics]") {
  auto server = test_support::start_mock();
  glmproxy::mock::Fault slow;
  slow.delay_before_headers = 300ms;
  slow.times = 6;
  server->add_fault(slow);
  auto c = test_support::config_for(*server);
  c.pool.max_connections = 2;
  c.pool.min_connections = 0;
  auto client = test_support::make_client(c);

  std::atomic<int> done{0};
  for (int i = 0; i < 6; ++i) {
    client.complete_async(numbered(i), [&done](glmproxy::Result<glmproxy::ChatResponse> r) {
      if (r) done.fetch_add(1);
    });
  }
  // While the first two are held by the upstream, the other four wait for a slot.
  glmproxy::MetricsSnapshot busy;
  const auto until = std::chrono::steady_clock::now() + 5s;
  do {
    busy = client.metrics();
    if (busy.pool.in_use == 2 && busy.pool.waiting == 4) break;
    std::this_thread::sleep_for(5ms);
  } while (std::chrono::steady_clock::now() < until);
  CHECK(busy.pool.in_use == 2);
  CHECK(busy.pool.waiting == 4);
  CHECK(busy.pool.max_connections == 2);
  CHECK(busy.pool.utilisation == Approx(1.0));

  while (done.load() < 6 && std::chrono::steady_clock::now() < until + 5s) {
    std::this_thread::sleep_for(10ms);
  }
  REQUIRE(done.load() == 6);
  std::this_thread::sleep_for(50ms);  // the I/O thread publishes the pool after the callbacks
  const auto m = client.metrics();
  CHECK(m.pool.in_use == 0);
  CHECK(m.pool.waiting == 0);
  CHECK(m.pool.open == 2);  // kept alive for reuse
  CHECK(m.pool.idle == 2);
  CHECK(m.pool.connections_opened == 2);
  CHECK(m.pool.acquired == 6);
  // Four waited at least one 300 ms answer: the average over six is well above zero.
  CHECK(m.pool.acquire_wait_avg_ms > 100);
  CHECK(m.pool.acquire_wait_p99_ms >= 300);
  CHECK(m.upstream.attempts == 6);
  CHECK(m.upstream.retries == 0);
  CHECK(m.requests.total == 6);
  CHECK(m.requests.ok == 6);
}

TEST_CASE("metrics(): attempts, retries and bytes on the wire, errors by code", "[metrics]") {
  auto server = test_support::start_mock();
  auto c = test_support::config_for(*server);
  c.retry.max_attempts = 3;
  auto client = test_support::make_client(c);
  glmproxy::mock::Fault busy;
  busy.status = 503;
  busy.times = 2;
  server->add_fault(busy);
  glmproxy::ChatRequest r = numbered(1);
  r.messages[0].content.append(5000, 'x');
  auto reply = client.complete(r);
  REQUIRE(reply);
  CHECK(reply->attempts == 3);
  REQUIRE_FALSE(client.complete(glmproxy::ChatRequest{}));  // InvalidArgument, never sent
  const auto m = client.metrics();
  CHECK(m.upstream.attempts == 3);
  CHECK(m.upstream.retries == 2);
  CHECK(m.upstream.bytes_sent > 3 * 5000);
  CHECK(m.upstream.bytes_sent < 3 * 5000 + 3 * 2000);

  // A body above STREAM_REQUEST_CHUNK_SIZE goes out through the read callback: counted once.
  glmproxy::ChatRequest big = numbered(2);
  big.messages[0].content.append(100'000, 'y');
  REQUIRE(client.complete(big));
  const auto after = client.metrics().upstream.bytes_sent - m.upstream.bytes_sent;
  CHECK(after > 100'000);
  CHECK(after < 102'000);
  CHECK(m.upstream.bytes_received > 3 * 50);
  CHECK(m.requests.errors == 1);
  REQUIRE(m.requests.errors_by_code.count("InvalidArgument") == 1);
  CHECK(m.requests.errors_by_code.at("InvalidArgument") == 1);
  CHECK(m.requests.errors_by_code.size() == 1);
  CHECK(m.requests.completion_tokens > 0);

  SECTION("METRICS_ENABLED=false counts no bytes and no waits") {
    c.metrics.enabled = false;
    auto quiet = test_support::make_client(c);
    REQUIRE(quiet.complete(numbered(2)));
    const auto q = quiet.metrics();
    CHECK(q.upstream.attempts == 1);
    CHECK(q.upstream.bytes_sent == 0);
    CHECK(q.pool.acquired == 0);
    CHECK(q.requests.total == 0);
  }
}

TEST_CASE("metrics(): process RSS, and CPU percent over an interval rather than a total",
          "[metrics]") {
  auto server = test_support::start_mock();
  auto c = test_support::config_for(*server);
  c.metrics.aggregation_interval = 100ms;
  c.metrics.retention = 1000ms;
  auto client = test_support::make_client(c);
  const auto first = client.metrics();
  CHECK(first.process.rss_bytes > (1u << 20));
  CHECK(first.process.peak_rss_bytes >= first.process.rss_bytes);
  CHECK(first.process.cpu_seconds > 0);

  // Busy for 300 ms on this thread: the next reading covers a busy interval.
  const auto busy_until = std::chrono::steady_clock::now() + 300ms;
  volatile std::uint64_t spin = 0;
  while (std::chrono::steady_clock::now() < busy_until) spin = spin + 1;
  const auto busy = client.metrics();
  CHECK(busy.process.cpu_interval_seconds >= 0.1);
  CHECK(busy.process.cpu_percent > 30);  // one core ~100; a loaded machine still gives most
  CHECK(busy.process.cpu_seconds > first.process.cpu_seconds);

  // Idle for 300 ms: the next interval is nearly idle (a cumulative figure would not drop).
  std::this_thread::sleep_for(300ms);
  const auto idle = client.metrics();
  CHECK(idle.process.cpu_percent < busy.process.cpu_percent);
  CHECK(idle.process.cpu_percent < 50);
}

TEST_CASE("MetricsSnapshot::to_json() is valid JSON with every section", "[metrics]") {
  auto server = test_support::start_mock();
  auto c = test_support::config_for(*server);
  c.cache.enabled = true;
  auto client = test_support::make_client(c);
  REQUIRE(client.complete(numbered(1)));
  REQUIRE(client.complete(numbered(1)));  // a cache hit
  REQUIRE_FALSE(client.complete(glmproxy::ChatRequest{}));
  const std::string json = client.metrics().to_json();
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  INFO(json);
  REQUIRE(parser.parse(json).get(doc) == simdjson::SUCCESS);
  CHECK(std::uint64_t(doc["requests"]["total"]) == 3);
  CHECK(std::uint64_t(doc["requests"]["cache_hits"]) == 1);
  CHECK(std::uint64_t(doc["requests"]["errors_by_code"]["InvalidArgument"]) == 1);
  CHECK(std::int64_t(doc["pool"]["max_connections"]) == 10);
  CHECK(std::uint64_t(doc["upstream"]["attempts"]) == 1);
  CHECK(std::uint64_t(doc["upstream"]["tls_handshakes"]) == 0);  // plain http
  CHECK(std::uint64_t(doc["admission"]["concurrency_decreases"]) == 0);
  CHECK(std::int64_t(doc["admission"]["model_concurrency_max"]) == 10);
  CHECK(doc["admission"]["model_limits"].get_object().size() == 0);
  CHECK(std::uint64_t(doc["process"]["rss_bytes"]) > 0);
  CHECK(std::uint64_t(doc["cache"]["hits"]) == 1);
  CHECK(std::uint64_t(doc["window"]["requests"]) == 3);
}
