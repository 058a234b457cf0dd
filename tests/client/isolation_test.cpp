// User code never runs where it can stall other requests: complete_async() callbacks run on the
// callback executor, a stream's on_event on the thread that called stream(). While one of them
// sleeps, other requests keep their latency.

#include <algorithm>
#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "support/docs_support.hpp"
#include "support/mock_client.hpp"

using namespace std::chrono_literals;
using glmproxy::ChatResponse;
using glmproxy::Config;
using glmproxy::ErrorCode;
using glmproxy::ProxyClient;
using glmproxy::Result;
using glmproxy::StreamEvent;
using test_support::config_for;
using test_support::eventually;
using test_support::make_client;
using test_support::numbered;
using test_support::start_mock;
using Clock = std::chrono::steady_clock;

namespace {

using Micros = std::chrono::microseconds;

// The median latency of `n` sequential complete() calls (distinct requests: no coalescing).
Micros median_complete(ProxyClient& client, int first, int n) {
  std::vector<Micros> took;
  for (int i = 0; i < n; ++i) {
    const auto start = Clock::now();
    auto reply = client.complete(numbered(first + i));
    took.push_back(std::chrono::duration_cast<Micros>(Clock::now() - start));
    if (!reply) FAIL(reply.error().describe());
  }
  std::sort(took.begin(), took.end());
  return took[took.size() / 2];
}

// "Within a few ms" of the latency alone. (With every callback on the I/O thread, as before,
// each call waited for the whole sleep.)
constexpr Micros kFewMs = 10ms;

}  // namespace

TEST_CASE(
    "isolation: while a complete_async() callback sleeps 500 ms, other requests keep "
    "their latency",
    "[isolation]") {
  auto server = start_mock();
  ProxyClient client = make_client(config_for(*server));
  const Micros alone = median_complete(client, 0, 20);

  auto entered = std::make_shared<std::promise<void>>();
  auto woke = std::make_shared<std::atomic<bool>>(false);
  client.complete_async(numbered(1000), [entered, woke](Result<ChatResponse>) {
    entered->set_value();
    std::this_thread::sleep_for(500ms);
    woke->store(true);
  });
  entered->get_future().wait();
  const Micros during = median_complete(client, 100, 20);
  // Another complete_async() is answered on the pool's other thread meanwhile.
  auto other = std::make_shared<std::promise<bool>>();
  client.complete_async(numbered(2000),
                        [other](Result<ChatResponse> r) { other->set_value(r.has_value()); });
  auto other_done = other->get_future();
  const bool answered = other_done.wait_for(2s) == std::future_status::ready;
  const bool still_asleep = !woke->load();
  INFO("alone " << alone.count() << " us, during " << during.count() << " us");
  CHECK(still_asleep);  // every call above ended while the callback slept
  CHECK(during <= alone + kFewMs);
  REQUIRE(answered);
  CHECK(other_done.get());
  REQUIRE(eventually([&] { return woke->load(); }));
}

TEST_CASE(
    "isolation: while a stream consumer sleeps 200 ms per event, other requests and "
    "streams keep their latency",
    "[isolation][stream]") {
  glmproxy::mock::MockOptions options;
  options.stream_chunks = 4;
  auto server = start_mock(options);
  ProxyClient client = make_client(config_for(*server));
  const Micros alone = median_complete(client, 0, 20);

  auto entered = std::make_shared<std::promise<void>>();
  std::atomic<int> slept{0};
  auto slow = std::async(std::launch::async, [&] {
    bool first = true;
    return client.stream(numbered(5000), [&](const StreamEvent&) {
      if (first) entered->set_value();
      first = false;
      std::this_thread::sleep_for(200ms);
      slept.fetch_add(1);
      return true;
    });
  });
  entered->get_future().wait();
  const Micros during = median_complete(client, 100, 20);
  // A second stream, with a consumer that does not sleep, is not held either.
  const auto stream_start = Clock::now();
  auto quick = client.stream(numbered(6000), [](const StreamEvent&) { return true; });
  const auto quick_took = Clock::now() - stream_start;
  const int slept_meanwhile = slept.load();
  INFO("alone " << alone.count() << " us, during " << during.count() << " us, quick stream "
                << std::chrono::duration_cast<Micros>(quick_took).count() << " us");
  CHECK(slept_meanwhile == 0);  // all of the above ran inside the consumer's first sleep
  CHECK(during <= alone + kFewMs);
  REQUIRE(quick);
  CHECK(quick_took < 200ms);
  auto reply = slow.get();
  REQUIRE(reply);
  CHECK(slept.load() >= 4);  // every event reached the slow consumer, in its own time
  CHECK(reply->content == options.reply_text);
}

TEST_CASE("isolation: a stream's events reach on_event on the thread that called stream()",
          "[isolation][stream]") {
  auto server = start_mock();
  ProxyClient client = make_client(config_for(*server));
  const auto me = std::this_thread::get_id();
  int events = 0, elsewhere = 0;
  auto reply = client.stream(numbered(1), [&](const StreamEvent&) {
    ++events;
    if (std::this_thread::get_id() != me) ++elsewhere;
    return true;
  });
  REQUIRE(reply);
  CHECK(events > 0);
  CHECK(elsewhere == 0);
}

TEST_CASE("isolation: a consumer that cancels is answered at once, though the upstream is silent",
          "[isolation][stream]") {
  auto server = start_mock();
  glmproxy::mock::Fault slow;
  slow.delay_between_chunks = 2s;  // the next chunk would come 2 s later
  server->add_fault(slow);
  Config config = config_for(*server);
  config.pool.max_connections = 1;
  config.pool.min_connections = 0;
  ProxyClient client = make_client(config);
  // The first event arrives after 2 s too (the delay is before each event): wait for it, then
  // cancel; the answer must not wait for the next chunk.
  Clock::time_point cancelled_at;
  auto reply = client.stream(numbered(1), [&](const StreamEvent&) {
    cancelled_at = Clock::now();
    return false;
  });
  const auto answered_in = Clock::now() - cancelled_at;
  REQUIRE_FALSE(reply);
  CHECK(reply.error().code == ErrorCode::Cancelled);
  CHECK(answered_in < 1s);
  CHECK(client.metrics().pool.in_use == 0);  // its slot is free when stream() returns
  // ... and the one connection slot serves the next request at once.
  const auto start = Clock::now();
  REQUIRE(client.complete(numbered(2)));
  CHECK(Clock::now() - start < 1s);
}

TEST_CASE("isolation: an exception in on_event ends the stream at once with Internal",
          "[isolation][stream]") {
  auto server = start_mock();
  glmproxy::mock::Fault slow;
  slow.delay_between_chunks = 2s;
  server->add_fault(slow);
  ProxyClient client = make_client(config_for(*server));
  Clock::time_point threw_at;
  auto reply = client.stream(numbered(1), [&](const StreamEvent&) -> bool {
    threw_at = Clock::now();
    throw std::runtime_error("consumer failed");
  });
  const auto answered_in = Clock::now() - threw_at;
  REQUIRE_FALSE(reply);
  CHECK(reply.error().code == ErrorCode::Internal);
  CHECK(reply.error().message == "the stream's on_event callback threw");
  CHECK(answered_in < 1s);
  CHECK(client.metrics().pool.in_use == 0);
}

TEST_CASE("callbacks: an application's executor runs every complete_async() callback",
          "[isolation][executor]") {
  // A one-thread executor of the application's.
  struct Worker {
    std::mutex mu;
    std::condition_variable cv;
    std::vector<std::function<void()>> tasks;
    bool stop = false;
    std::thread thread{[this] {
      std::unique_lock lock(mu);
      for (;;) {
        cv.wait(lock, [this] { return stop || !tasks.empty(); });
        if (tasks.empty()) return;
        auto task = std::move(tasks.front());
        tasks.erase(tasks.begin());
        lock.unlock();
        task();
        lock.lock();
      }
    }};
    ~Worker() {
      {
        std::lock_guard lock(mu);
        stop = true;
      }
      cv.notify_all();
      thread.join();
    }
  };
  auto worker = std::make_shared<Worker>();
  auto server = start_mock();
  Config config = config_for(*server);
  config.cache.enabled = true;
  config.callback_executor = [worker](std::function<void()> task) {
    {
      std::lock_guard lock(worker->mu);
      worker->tasks.push_back(std::move(task));
    }
    worker->cv.notify_one();
  };
  const auto worker_id = worker->thread.get_id();
  {
    ProxyClient client = make_client(config);
    REQUIRE(client.complete(numbered(0)));  // stored: the next one is a cache hit
    auto on_worker = std::make_shared<std::atomic<int>>(0);
    auto done = std::make_shared<std::atomic<int>>(0);
    auto note = [on_worker, done, worker_id](Result<ChatResponse>) {
      if (std::this_thread::get_id() == worker_id) on_worker->fetch_add(1);
      done->fetch_add(1);
    };
    client.complete_async(numbered(0), note);  // a cache hit
    client.complete_async(numbered(1), note);  // over the network
    glmproxy::ChatRequest bad = numbered(2);
    bad.request_id = "bad\nid";  // refused before the network
    client.complete_async(bad, note);
    REQUIRE(eventually([&] { return done->load() == 3; }));
    CHECK(on_worker->load() == 3);
  }
}

TEST_CASE("callbacks: an executor that throws still gets each callback run exactly once",
          "[isolation][executor]") {
  auto server = start_mock();
  Config config = config_for(*server);
  config.callback_executor = [](std::function<void()>) { throw std::runtime_error("full"); };
  ProxyClient client = make_client(config);
  const auto me = std::this_thread::get_id();
  auto calls = std::make_shared<std::atomic<int>>(0);
  auto here = std::make_shared<std::atomic<int>>(0);
  for (int i = 0; i < 5; ++i) {
    client.complete_async(numbered(i), [calls, here, me](Result<ChatResponse> r) {
      if (std::this_thread::get_id() == me) here->fetch_add(1);
      if (r) calls->fetch_add(1);
    });
  }
  REQUIRE(eventually([&] { return calls->load() == 5; }));
  std::this_thread::sleep_for(100ms);
  CHECK(calls->load() == 5);
  CHECK(here->load() == 0);
}

// transport.md, Threads: while a stream's consumer runs on_event with the loop lent, nothing
// reads that stream, and its idle timer restarts when the loop is taken again: a consumer
// slower than GLMPROXY_STREAM_IDLE_TIMEOUT_MS does not time out its own stream.
TEST_CASE("isolation: a consumer slower than the stream idle timeout does not time its stream out",
          "[isolation][stream]") {
  auto server = start_mock();
  glmproxy::mock::Fault paced;
  paced.delay_between_chunks = 20ms;  // the upstream is never silent for long
  server->add_fault(paced);
  Config config = config_for(*server);
  config.timeouts.stream_idle = 150ms;
  ProxyClient client = make_client(config);
  int events = 0;
  auto reply = client.stream(numbered(1), [&](const StreamEvent& e) {
    if (e.type == StreamEvent::Type::Text && events++ < 4) std::this_thread::sleep_for(250ms);
    return true;
  });
  REQUIRE(reply);
  CHECK(events >= 2);
  CHECK_FALSE(reply->content.empty());
}
