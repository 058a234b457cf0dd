// Six statements of the docs that were read in the code and found false (issue 14), each with a
// test that failed before its fix: billing of identical embeddings merged into one batch, the
// AIMD and circuit-breaker counters in metrics() and Prometheus, a cancelled stream's admission
// slot, tenant keys without a key file, the thread completion callbacks run on, and the key
// sent upstream.

#include <algorithm>
#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <future>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "glmproxy/mock/mock_upstream.hpp"
#include "glmproxy/proxy_client.hpp"
#include "support/mock_client.hpp"

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
using test_support::config_for;
using test_support::make_client;
using test_support::start_mock;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {

ChatRequest ask(const std::string& text, const std::string& key = {}) {
  ChatRequest r;
  r.messages = {{"user", text}};
  r.api_key = key;
  return r;
}

}  // namespace

// --- 5. Callbacks -----------------------------------------------------------------------------
// docs/transport.md: completion callbacks run on the I/O thread, "so a callback never runs on
// the caller's stack".

TEST_CASE("callbacks: a moved-from client answers on another thread", "[callbacks]") {
  auto server = start_mock();
  ProxyClient a = make_client(config_for(*server));
  ProxyClient b = std::move(a);
  std::promise<std::pair<std::thread::id, ErrorCode>> answered;
  a.complete_async(ask("hello"), [&](Result<ChatResponse> r) {  // NOLINT(bugprone-use-after-move)
    answered.set_value({std::this_thread::get_id(), r ? ErrorCode::Internal : r.error().code});
  });
  auto future = answered.get_future();
  REQUIRE(future.wait_for(10s) == std::future_status::ready);
  const auto [thread, code] = future.get();
  CHECK(thread != std::this_thread::get_id());
  CHECK(code == ErrorCode::InvalidArgument);
  REQUIRE(b.complete(ask("still works")));
}

namespace {

// Set while this thread is inside a complete_async() call the test made: a callback that sees
// it set runs on that call's stack.
thread_local bool inside_call = false;

struct Answer {
  std::thread::id thread;
  bool nested = false;  // ran inside the complete_async() call that sent it
  bool ok = false;
  ErrorCode code = ErrorCode::Internal;
};

}  // namespace

TEST_CASE("callbacks: requests answered while the client is destroyed, not on its stack",
          "[callbacks]") {
  auto server = start_mock();
  Fault slow;  // nothing is answered before the client goes
  slow.delay_before_headers = 5s;
  slow.times = 0;
  Config config = config_for(*server);
  config.pool.max_connections = 1;  // one request in flight, the others wait for the slot
  config.pool.min_connections = 0;
  config.retry.max_attempts = 1;
  bool cached = false;
  SECTION("in flight and waiting for a slot") {}
  SECTION("in the batching queue") {
    config.batch.enabled = true;
    config.batch.window = 10s;
  }
  SECTION("sending again answered from the cache") {
    config.cache.enabled = true;
    cached = true;
  }
  std::mutex mu;
  std::vector<Answer> answers;
  auto record = [&](const Result<ChatResponse>& r) {
    std::lock_guard lock(mu);
    answers.push_back({std::this_thread::get_id(), inside_call, static_cast<bool>(r),
                       r ? ErrorCode::Internal : r.error().code});
  };
  // Each answer sends one more request from its callback (as a retry loop would), while the
  // client is being destroyed: that one is answered too, on the I/O thread.
  auto* client = new ProxyClient(make_client(config));
  if (cached) REQUIRE(client->complete(ask("again")));  // "again" is a cache hit from now on
  server->add_fault(slow);
  const std::thread::id destroyer = std::this_thread::get_id();
  for (int i = 0; i < 3; ++i) {
    client->complete_async(ask("q" + std::to_string(i)), [&, client](Result<ChatResponse> r) {
      record(r);
      inside_call = true;
      client->complete_async(ask("again"), [&](Result<ChatResponse> again) { record(again); });
      inside_call = false;
    });
  }
  std::this_thread::sleep_for(100ms);
  delete client;  // answers the 3 (and the 3 they send) while ~ProxyClient runs
  std::lock_guard lock(mu);
  REQUIRE(answers.size() == 6);
  for (const Answer& a : answers) {
    CHECK(a.thread != destroyer);
    CHECK_FALSE(a.nested);
    if (a.ok) {
      CHECK(cached);  // only a cache hit can still succeed
    } else {
      CHECK((a.code == ErrorCode::ShuttingDown || a.code == ErrorCode::Cancelled));
    }
  }
}
