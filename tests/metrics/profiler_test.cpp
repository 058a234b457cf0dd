// PROFILING_ENABLED: phase marks in order, lookup by request id (sent upstream as X-Request-ID),
// the ring's size, summaries and slowest requests, outcomes, and no API key anywhere.

#include <simdjson.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <future>
#include <string>
#include <thread>
#include <vector>

#include "support/mock_client.hpp"

using namespace std::chrono_literals;

namespace {

using test_support::numbered;

glmproxy::Config profiled(const glmproxy::mock::MockUpstream& server) {
  auto c = test_support::config_for(server);
  c.profiling.enabled = true;
  return c;
}

}  // namespace

TEST_CASE("profiling: off by default, an empty report and no lookups", "[profiling]") {
  auto server = test_support::start_mock();
  auto client = test_support::make_client(test_support::config_for(*server));
  REQUIRE(client.complete(numbered(1, "req-1")));
  const auto report = client.profiling();
  CHECK_FALSE(report.enabled);
  CHECK(report.recorded == 0);
  CHECK(report.slowest.empty());
  CHECK_FALSE(client.request_profile("req-1"));
}

TEST_CASE("profiling: phase marks in order, found by request id, X-Request-ID upstream",
          "[profiling]") {
  auto server = test_support::start_mock();
  auto c = profiled(*server);
  c.pool.min_connections = 0;
  auto client = test_support::make_client(c);
  REQUIRE(client.complete(numbered(1, "req-first")));
  REQUIRE(client.complete(numbered(2, "req-second")));

  const auto recorded = server->recorded();
  REQUIRE(recorded.size() == 2);
  CHECK(recorded[0].header("x-request-id") == std::optional<std::string>("req-first"));

  const auto first = client.request_profile("req-first");
  REQUIRE(first);
  CHECK(first->api == "openai");
  CHECK(first->model == c.upstream.default_model);
  CHECK(first->outcome == "ok");
  CHECK(first->http_status == 200);
  CHECK(first->attempts == 1);
  CHECK_FALSE(first->connection_reused);
  CHECK(first->bytes_sent > 0);
  CHECK(first->bytes_received > 0);
  const auto& m = first->at_us;
  CHECK(m.cache == -1);  // no cache configured
  CHECK(m.queued >= 0);
  CHECK(m.admitted >= m.queued);
  CHECK(m.connect >= m.admitted);
  CHECK(m.request_sent >= m.connect);
  CHECK(m.first_byte >= m.request_sent);
  CHECK(m.done >= m.first_byte);
  CHECK(m.tls == -1);  // plain HTTP
  CHECK(m.first_token == -1);

  const auto second = client.request_profile("req-second");
  REQUIRE(second);
  CHECK(second->connection_reused);
  CHECK(second->at_us.connect == -1);  // no connect phase on a pooled connection
  CHECK(second->at_us.first_byte >= second->at_us.request_sent);

  CHECK_FALSE(client.request_profile("req-unknown"));
  // No API key in anything the profiler gives out.
  const std::string json = client.profiling().to_json();
  CHECK(json.find(c.upstream.api_key) == std::string::npos);
  CHECK(json.find("sk-") == std::string::npos);
}

TEST_CASE("profiling: the ring keeps the newest N, summary and slowest", "[profiling]") {
  auto server = test_support::start_mock();
  auto c = profiled(*server);
  c.profiling.ring_size = 5;
  auto client = test_support::make_client(c);
  for (int i = 0; i < 7; ++i) {
    if (i == 4) {
      glmproxy::mock::Fault slow;
      slow.delay_before_headers = 150ms;
      server->add_fault(slow);
    }
    REQUIRE(client.complete(numbered(i, "ring-" + std::to_string(i))));
  }
  const auto report = client.profiling(3);
  CHECK(report.enabled);
  CHECK(report.capacity == 5);
  CHECK(report.kept == 5);
  CHECK(report.recorded == 7);
  CHECK_FALSE(client.request_profile("ring-0"));
  CHECK_FALSE(client.request_profile("ring-1"));
  CHECK(client.request_profile("ring-2"));
  CHECK(client.request_profile("ring-6"));
  REQUIRE(report.slowest.size() == 3);
  CHECK(report.slowest[0].request_id == "ring-4");
  CHECK(report.slowest[0].at_us.done >= 150'000);
  CHECK(report.slowest[0].at_us.done >= report.slowest[1].at_us.done);
  CHECK(report.slowest[1].at_us.done >= report.slowest[2].at_us.done);
  CHECK(report.total.count == 5);
  CHECK(report.total.p50_ms <= report.total.p95_ms);
  CHECK(report.total.p95_ms <= report.total.p99_ms);
  CHECK(report.total.p99_ms <= report.total.max_ms);
  CHECK(report.total.max_ms >= 150);
  CHECK(report.upstream.max_ms >= 150);  // the delay was the upstream's, not the queue's
  CHECK(report.queue_wait.max_ms < 150);

  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  const std::string json = report.to_json();
  INFO(json);
  REQUIRE(parser.parse(json).get(doc) == simdjson::SUCCESS);
  CHECK(std::uint64_t(doc["recorded"]) == 7);
  CHECK(std::string_view(doc["slowest"].at(0)["request_id"]) == "ring-4");
  CHECK(std::int64_t(doc["slowest"].at(0)["at_us"]["done"]) >= 150'000);
}

TEST_CASE("profiling: cache hits, coalesced requests, streams, errors, generated ids",
          "[profiling]") {
  auto server = test_support::start_mock();
  auto c = profiled(*server);
  c.cache.enabled = true;
  c.retry.max_attempts = 1;
  auto client = test_support::make_client(c);

  REQUIRE(client.complete(numbered(1, "miss")));
  REQUIRE(client.complete(numbered(1, "hit")));
  const auto hit = client.request_profile("hit");
  REQUIRE(hit);
  CHECK(hit->outcome == "cache_hit");
  CHECK(hit->at_us.cache >= 0);
  CHECK(hit->at_us.admitted == -1);
  CHECK(hit->attempts == 0);
  CHECK(client.request_profile("miss")->at_us.cache >= 0);

  // Two identical requests at once: one upstream call, one joins it.
  glmproxy::mock::Fault slow;
  slow.delay_before_headers = 200ms;
  server->add_fault(slow);
  auto a = std::async(std::launch::async, [&] { return client.complete(numbered(2, "pair-a")); });
  std::this_thread::sleep_for(50ms);
  auto b = std::async(std::launch::async, [&] { return client.complete(numbered(2, "pair-b")); });
  REQUIRE(a.get());
  REQUIRE(b.get());
  CHECK(client.request_profile("pair-a")->outcome == "ok");
  CHECK(client.request_profile("pair-b")->outcome == "coalesced");
  CHECK(client.request_profile("pair-b")->attempts == 0);

  glmproxy::ChatRequest s = numbered(3, "streamed");
  REQUIRE(client.stream(s, [](const glmproxy::StreamEvent&) { return true; }));
  const auto streamed = client.request_profile("streamed");
  REQUIRE(streamed);
  CHECK(streamed->stream);
  CHECK(streamed->at_us.first_token >= streamed->at_us.first_byte);
  CHECK(streamed->at_us.done >= streamed->at_us.first_token);

  glmproxy::mock::Fault bad;
  bad.status = 500;
  server->add_fault(bad);
  REQUIRE_FALSE(client.complete(numbered(4, "failed")));
  const auto failed = client.request_profile("failed");
  REQUIRE(failed);
  CHECK(failed->outcome == "error");
  CHECK(failed->error_code == "UpstreamError");
  CHECK(failed->http_status == 500);

  glmproxy::EmbeddingRequest e;
  e.input = {"x"};
  REQUIRE(client.embed(e));  // no id given: the profiler names it
  const auto report = client.profiling(100);
  bool generated = false;
  for (const auto& p : report.slowest) {
    if (p.api == "embeddings") generated = p.request_id.rfind("glmproxy-", 0) == 0;
  }
  CHECK(generated);
}
