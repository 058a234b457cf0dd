// The response cache, single-flight coalescing, the batching queue and embeddings, through
// ProxyClient against the mock upstream.

#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <future>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "glmproxy/mock/mock_upstream.hpp"
#include "glmproxy/proxy_client.hpp"
#include "support/mock_client.hpp"

using glmproxy::CachePolicy;
using glmproxy::ChatRequest;
using glmproxy::ChatResponse;
using glmproxy::Config;
using glmproxy::EmbeddingRequest;
using glmproxy::EmbeddingResponse;
using glmproxy::ErrorCode;
using glmproxy::ProxyClient;
using glmproxy::Result;
using glmproxy::StreamEvent;
using glmproxy::mock::Fault;
using glmproxy::mock::MockUpstream;
using namespace std::chrono_literals;
using SteadyClock = std::chrono::steady_clock;

using test_support::config_for;
using test_support::make_client;

namespace {

std::unique_ptr<MockUpstream> start_mock() {
  glmproxy::mock::MockOptions options;
  options.record_limit = 5000;
  return test_support::start_mock(options);
}

ChatRequest ask(std::string text) {
  ChatRequest r;
  r.messages = {{"user", std::move(text)}};
  return r;
}

// A clock the test moves by hand.
struct ManualClock {
  std::shared_ptr<std::atomic<std::int64_t>> ms = std::make_shared<std::atomic<std::int64_t>>(0);
  std::function<SteadyClock::time_point()> fn() const {
    auto m = ms;
    return [m] { return SteadyClock::time_point(std::chrono::milliseconds(m->load())); };
  }
  void advance(std::chrono::milliseconds d) const { ms->fetch_add(d.count()); }
};

// Runs `n` complete() calls at once (released together) and returns their results.
std::vector<Result<ChatResponse>> concurrent(ProxyClient& client, int n,
                                             const std::function<ChatRequest(int)>& make) {
  std::vector<Result<ChatResponse>> results(static_cast<std::size_t>(n),
                                            glmproxy::make_error(ErrorCode::Internal, "unset"));
  std::promise<void> go;
  std::shared_future<void> start = go.get_future().share();
  std::vector<std::thread> threads;
  for (int i = 0; i < n; ++i) {
    threads.emplace_back([&, i] {
      ChatRequest r = make(i);
      start.wait();
      results[static_cast<std::size_t>(i)] = client.complete(r);
    });
  }
  go.set_value();
  for (auto& t : threads) t.join();
  return results;
}

}  // namespace

TEST_CASE("cache: 100 identical concurrent calls make one upstream request, TTL, Bypass",
          "[cache]") {
  auto server = start_mock();
  Fault slow;  // keeps the first call in flight while the others arrive
  slow.delay_before_headers = 300ms;
  server->add_fault(slow);
  Config config = config_for(*server);
  config.cache.enabled = true;
  config.cache.ttl = 60'000ms;
  ManualClock clock;
  config.clock = clock.fn();
  auto client = make_client(config);

  auto results = concurrent(client, 100, [](int) { return ask("What is 2+2?"); });
  int ok = 0;
  for (auto& r : results) {
    if (r && r->content == results[0]->content) ++ok;
  }
  CHECK(ok == 100);
  CHECK(server->stats().chat_requests == 1);
  CHECK(client.metrics().coalescing.joined == 99);

  // Again, after: answered from the cache.
  auto again = concurrent(client, 100, [](int) { return ask("What is 2+2?"); });
  CHECK(server->stats().chat_requests == 1);
  for (auto& r : again) {
    REQUIRE(r);
    CHECK(r->from_cache);
  }
  // The TTL runs from insertion: just before it, still cached; at it, gone.
  clock.advance(59'999ms);
  REQUIRE(client.complete(ask("What is 2+2?")));
  CHECK(server->stats().chat_requests == 1);
  clock.advance(1ms);
  auto fresh = client.complete(ask("What is 2+2?"));
  REQUIRE(fresh);
  CHECK_FALSE(fresh->from_cache);
  CHECK(server->stats().chat_requests == 2);
  // Bypass always asks upstream, and does not disturb the cached entry.
  ChatRequest bypass = ask("What is 2+2?");
  bypass.cache = CachePolicy::Bypass;
  REQUIRE(client.complete(bypass));
  CHECK(server->stats().chat_requests == 3);
  auto cached = client.complete(ask("What is 2+2?"));
  REQUIRE(cached);
  CHECK(cached->from_cache);
  CHECK(server->stats().chat_requests == 3);
  const auto m = client.metrics();
  CHECK(m.cache.expirations == 1);
  CHECK(m.cache.hits >= 101);
}

TEST_CASE("cache: different parameters are different entries, Refresh re-asks and stores",
          "[cache]") {
  auto server = start_mock();
  Config config = config_for(*server);
  config.cache.enabled = true;
  auto client = make_client(config);
  ChatRequest a = ask("same text");
  REQUIRE(client.complete(a));
  ChatRequest b = a;
  b.temperature = 0.2;
  REQUIRE(client.complete(b));
  ChatRequest c = a;
  c.model = "glm-4.6";
  REQUIRE(client.complete(c));
  CHECK(server->stats().chat_requests == 3);
  ChatRequest refresh = a;
  refresh.cache = CachePolicy::Refresh;
  auto r = client.complete(refresh);
  REQUIRE(r);
  CHECK_FALSE(r->from_cache);
  CHECK(server->stats().chat_requests == 4);
  auto hit = client.complete(a);
  REQUIRE(hit);
  CHECK(hit->from_cache);
  CHECK(server->stats().chat_requests == 4);
}

TEST_CASE("cache: errors are never stored", "[cache]") {
  auto server = start_mock();
  Config config = config_for(*server);
  config.cache.enabled = true;
  auto client = make_client(config);
  Fault bad;
  bad.status = 400;
  bad.body = R"({"error":{"message":"bad"}})";
  server->add_fault(bad);
  auto first = client.complete(ask("x"));
  REQUIRE_FALSE(first);
  auto second = client.complete(ask("x"));
  REQUIRE(second);
  CHECK_FALSE(second->from_cache);
  CHECK(server->stats().chat_requests == 2);
}

TEST_CASE("cache: complete_async hits still answer on another thread (the callback executor)",
          "[cache]") {
  auto server = start_mock();
  Config config = config_for(*server);
  config.cache.enabled = true;
  auto client = make_client(config);
  REQUIRE(client.complete(ask("x")));
  std::promise<std::pair<bool, std::thread::id>> done;
  client.complete_async(ask("x"), [&](Result<ChatResponse> r) {
    done.set_value({r && r->from_cache, std::this_thread::get_id()});
  });
  auto [hit, thread] = done.get_future().get();
  CHECK(hit);
  CHECK(thread != std::this_thread::get_id());
}

TEST_CASE("cache: a stream is stored as its events and replayed", "[cache][stream]") {
  auto server = start_mock();
  Config config = config_for(*server);
  config.cache.enabled = true;
  auto client = make_client(config);
  std::vector<std::pair<StreamEvent::Type, std::string>> first, second;
  auto r1 = client.stream(ask("stream me"), [&](const StreamEvent& e) {
    first.emplace_back(e.type, e.text);
    return true;
  });
  REQUIRE(r1);
  auto r2 = client.stream(ask("stream me"), [&](const StreamEvent& e) {
    second.emplace_back(e.type, e.text);
    return true;
  });
  REQUIRE(r2);
  CHECK(r2->from_cache);
  CHECK(r2->content == r1->content);
  CHECK(second == first);
  CHECK(server->stats().chat_requests == 1);
  // A streamed answer and a plain one are different entries.
  auto plain = client.complete(ask("stream me"));
  REQUIRE(plain);
  CHECK_FALSE(plain->from_cache);
}

TEST_CASE("coalescing: works with the cache off, errors are shared too", "[coalesce]") {
  auto server = start_mock();
  Config config = config_for(*server);
  auto client = make_client(config);
  Fault slow;
  slow.delay_before_headers = 300ms;
  server->add_fault(slow);
  auto results = concurrent(client, 20, [](int) { return ask("same"); });
  for (auto& r : results) CHECK(r);
  CHECK(server->stats().chat_requests == 1);

  Fault bad;
  bad.status = 401;
  bad.body = R"({"error":{"message":"no"}})";
  bad.delay_before_headers = 300ms;
  server->add_fault(bad);
  auto failed = concurrent(client, 20, [](int) { return ask("same again"); });
  for (auto& r : failed) {
    REQUIRE_FALSE(r);
    CHECK(r.error().code == ErrorCode::Unauthorized);
  }
  CHECK(server->stats().chat_requests == 2);

  // Off: every request is its own call.
  config.cache.coalesce = false;
  auto separate = make_client(config);
  server->reset();
  server->add_fault(slow);
  auto own = concurrent(separate, 5, [](int) { return ask("same"); });
  CHECK(server->stats().chat_requests == 5);
}

TEST_CASE("batching: a full queue refuses at once, nothing is lost or sent twice", "[batch]") {
  auto server = start_mock();
  Config config = config_for(*server);
  config.batch.enabled = true;
  config.batch.max_queue_size = 10;
  config.batch.max_size = 10;
  config.batch.window = 50ms;
  auto client = make_client(config);
  std::atomic<int> ok{0}, full{0}, other{0}, calls{0};
  std::promise<void> all;
  for (int i = 0; i < 1000; ++i) {
    client.complete_async(ask("question " + std::to_string(i)), [&](Result<ChatResponse> r) {
      if (r) {
        ++ok;
      } else if (r.error().code == ErrorCode::QueueFull) {
        ++full;
      } else {
        ++other;
      }
      if (++calls == 1000) all.set_value();
    });
  }
  REQUIRE(all.get_future().wait_for(30s) == std::future_status::ready);
  CHECK(calls == 1000);
  CHECK(other == 0);
  CHECK(ok >= 10);
  CHECK(full > 0);
  CHECK(ok + full == 1000);
  CHECK(server->stats().chat_requests == static_cast<std::uint64_t>(ok.load()));
  CHECK(client.metrics().batching.queue_full == static_cast<std::uint64_t>(full.load()));
}

TEST_CASE("batching: the window opens at the first request, a full batch goes at once", "[batch]") {
  auto server = start_mock();
  Config config = config_for(*server);
  config.batch.enabled = true;
  config.batch.max_size = 10;
  config.batch.window = 300ms;
  auto client = make_client(config);
  SECTION("five requests wait for the window, then go together") {
    const auto start = SteadyClock::now();
    auto results = concurrent(client, 5, [](int i) { return ask("w" + std::to_string(i)); });
    const auto took = SteadyClock::now() - start;
    for (auto& r : results) CHECK(r);
    CHECK(took >= 290ms);
    const auto m = client.metrics();
    CHECK(m.batching.batches == 1);
    CHECK(m.batching.mean_batch_size == Approx(5.0));
    CHECK(m.batching.upstream_calls == 5);
  }
  SECTION("ten requests fill the batch and go before the window ends") {
    config.batch.window = 5000ms;
    auto patient = make_client(config);
    const auto start = SteadyClock::now();
    auto results = concurrent(patient, 10, [](int i) { return ask("f" + std::to_string(i)); });
    const auto took = SteadyClock::now() - start;
    for (auto& r : results) CHECK(r);
    CHECK(took < 4000ms);
    CHECK(patient.metrics().batching.batches == 1);
  }
  SECTION("a steady trickle still flushes (not a debounce)") {
    config.batch.window = 100ms;
    config.batch.max_size = 1000;
    auto trickle = make_client(config);
    std::atomic<int> done{0};
    const auto start = SteadyClock::now();
    for (int i = 0; i < 20; ++i) {
      trickle.complete_async(ask("t" + std::to_string(i)),
                             [&](Result<ChatResponse> r) { done += r ? 1 : 0; });
      std::this_thread::sleep_for(20ms);   // a request every 20 ms, for 400 ms
      if (i == 9) CHECK(done.load() > 0);  // the first window (100 ms) has long flushed
    }
    while (done.load() < 20 && SteadyClock::now() - start < 10s) std::this_thread::sleep_for(5ms);
    CHECK(done == 20);
    CHECK(trickle.metrics().batching.batches >= 3);
  }
}

TEST_CASE("embeddings: vectors come back in input order, and are cached", "[embed]") {
  auto server = start_mock();
  Config config = config_for(*server);
  config.cache.enabled = true;
  auto client = make_client(config);
  EmbeddingRequest r;
  r.input = {"alpha", "beta", "gamma"};
  auto a = client.embed(r);
  INFO((a ? "" : a.error().describe()));
  REQUIRE(a);
  REQUIRE(a->embeddings.size() == 3);
  CHECK(a->model == "embedding-3");
  CHECK(a->usage.prompt_tokens > 0);
  EmbeddingRequest one;
  one.input = {"beta"};
  auto b = client.embed(one);
  REQUIRE(b);
  CHECK(b->embeddings[0] == a->embeddings[1]);
  auto again = client.embed(r);
  REQUIRE(again);
  CHECK(again->from_cache);
  CHECK(again->embeddings == a->embeddings);
  CHECK(server->stats().embeddings_requests == 2);
  EmbeddingRequest empty;
  auto refused = client.embed(empty);
  REQUIRE_FALSE(refused);
  CHECK(refused.error().code == ErrorCode::InvalidArgument);
  CHECK(server->stats().embeddings_requests == 2);
}

TEST_CASE("embeddings: 50 concurrent embed() calls are merged into batches", "[embed][batch]") {
  auto server = start_mock();
  Config config = config_for(*server);
  config.batch.enabled = true;
  config.batch.max_size = 10;
  config.batch.window = 200ms;
  auto client = make_client(config);
  // The vectors each input gets when sent alone, to check the split.
  Config plain = config_for(*server);
  auto reference = make_client(plain);
  std::vector<std::vector<float>> expected;
  for (int i = 0; i < 50; ++i) {
    EmbeddingRequest r;
    r.input = {"text number " + std::to_string(i)};
    auto e = reference.embed(r);
    REQUIRE(e);
    expected.push_back(e->embeddings[0]);
  }
  server->reset();

  std::vector<Result<EmbeddingResponse>> results(
      50, glmproxy::make_error(ErrorCode::Internal, "unset"));
  std::promise<void> go;
  std::shared_future<void> start = go.get_future().share();
  std::vector<std::thread> threads;
  for (int i = 0; i < 50; ++i) {
    threads.emplace_back([&, i] {
      EmbeddingRequest r;
      r.input = {"text number " + std::to_string(i)};
      start.wait();
      results[static_cast<std::size_t>(i)] = client.embed(r);
    });
  }
  go.set_value();
  for (auto& t : threads) t.join();
  std::int64_t tokens = 0;
  for (int i = 0; i < 50; ++i) {
    auto& r = results[static_cast<std::size_t>(i)];
    INFO(i << ": " << (r ? "" : r.error().describe()));
    REQUIRE(r);
    REQUIRE(r->embeddings.size() == 1);
    CHECK(r->embeddings[0] == expected[static_cast<std::size_t>(i)]);
    tokens += r->usage.prompt_tokens;
  }
  CHECK(server->stats().embeddings_requests <= 5);
  const auto m = client.metrics();
  CHECK(m.batching.batched_requests == 50);
  CHECK(m.batching.calls_saved == 50 - m.batching.upstream_calls);
  CHECK(m.batching.upstream_calls == server->stats().embeddings_requests);
  CHECK(tokens > 0);
}
