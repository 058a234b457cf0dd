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
#include "support/key_file.hpp"
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
using test_support::key_json;
using test_support::KeyFile;
using test_support::keys_file;
using test_support::make_client;
using test_support::start_mock;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {

std::string tenants_file(const std::vector<std::string>& keys) {
  std::vector<std::string> records;
  for (const std::string& key : keys) records.push_back(key_json(key));
  return keys_file(records);
}

std::int64_t tokens_used(const ProxyClient& client, const std::string& key) {
  auto stats = client.key_stats(key);
  INFO((stats ? "" : stats.error().describe()));
  REQUIRE(stats);
  return stats->current_usage.tokens_used_in_current_window;
}

ChatRequest ask(const std::string& text, const std::string& key = {}) {
  ChatRequest r;
  r.messages = {{"user", text}};
  r.api_key = key;
  return r;
}

EmbeddingRequest embedding(std::vector<std::string> input, const std::string& key = {}) {
  EmbeddingRequest r;
  r.input = std::move(input);
  r.api_key = key;
  return r;
}

// Runs embed() for each request on its own thread, all at once, and returns the results.
std::vector<Result<EmbeddingResponse>> embed_concurrently(ProxyClient& client,
                                                          const std::vector<EmbeddingRequest>& rs) {
  std::vector<Result<EmbeddingResponse>> out(rs.size(),
                                             glmproxy::make_error(ErrorCode::Internal, "unset"));
  std::vector<std::thread> threads;
  for (std::size_t i = 0; i < rs.size(); ++i) {
    threads.emplace_back([&, i] { out[i] = client.embed(rs[i]); });
  }
  for (auto& t : threads) t.join();
  return out;
}

// A line of the Prometheus text that starts with `prefix`, or "".
std::string prometheus_line(const std::string& text, const std::string& prefix) {
  std::size_t at = 0;
  while (at < text.size()) {
    const std::size_t end = std::min(text.find('\n', at), text.size());
    std::string line = text.substr(at, end - at);
    if (line.rfind(prefix, 0) == 0) return line;
    at = end + 1;
  }
  return {};
}

}  // namespace

// --- 1. Billing -------------------------------------------------------------------------------
// docs/tenants.md: "coalesced requests are charged once (one upstream call)"; docs/caching.md:
// "Identical requests in a batch are sent once". An input sent once is paid once: the requests
// merged with it are like coalesced joiners.

TEST_CASE("billing: identical embeddings merged into one batch are charged once", "[billing]") {
  auto server = start_mock();
  Fault tokens;
  tokens.times = 0;
  tokens.prompt_tokens = 90;
  server->add_fault(tokens);
  KeyFile file(tenants_file({"pk_bill_a"}));
  Config config = config_for(*server);
  config.keys.file = file.path.string();
  config.cache.enabled = true;
  config.cache.coalesce = false;  // so the three reach the batch instead of joining one flight
  config.batch.enabled = true;
  config.batch.max_size = 3;  // the batch goes when the third arrives
  config.batch.window = 10s;  // (and not before)
  auto client = make_client(config);

  const std::vector<EmbeddingRequest> same(3, embedding({"the same text"}, "pk_bill_a"));
  const auto results = embed_concurrently(client, same);
  for (const auto& r : results) {
    INFO((r ? "" : r.error().describe()));
    REQUIRE(r);
    CHECK(r->merged_requests == 3);
    CHECK(r->embeddings.size() == 1);
  }
  REQUIRE(server->stats().embeddings_requests == 1);
  // One upstream call that sent the input once, reporting 90 tokens: the tenant pays 90.
  CHECK(tokens_used(client, "pk_bill_a") == 90);
  CHECK(client.metrics().requests.prompt_tokens == 90);  // "counted once per upstream call"
}

TEST_CASE("billing: a batch with duplicates charges the call's tokens once in total", "[billing]") {
  auto server = start_mock();
  Fault tokens;
  tokens.times = 0;
  tokens.prompt_tokens = 120;
  server->add_fault(tokens);
  KeyFile file(tenants_file({"pk_bill_b", "pk_bill_c"}));
  Config config = config_for(*server);
  config.keys.file = file.path.string();
  config.cache.enabled = true;
  config.cache.coalesce = false;
  config.batch.enabled = true;
  config.batch.max_size = 4;
  config.batch.window = 10s;
  auto client = make_client(config);

  // Tenant b sends "aaaa" twice (merged: sent once) and tenant c "bbbbbbbb" once: the call
  // carries 12 input bytes, b's 4 and c's 8, and its 120 tokens are shared 40 / 80.
  const auto results = embed_concurrently(
      client, {embedding({"aaaa"}, "pk_bill_b"), embedding({"aaaa"}, "pk_bill_b"),
               embedding({"bbbbbbbb"}, "pk_bill_c"), embedding({"aaaa"}, "pk_bill_b")});
  for (const auto& r : results) {
    INFO((r ? "" : r.error().describe()));
    REQUIRE(r);
  }
  REQUIRE(server->stats().embeddings_requests == 1);
  const auto recorded = server->recorded();
  REQUIRE(recorded.size() == 1);
  const std::string& body = recorded[0].body;
  const std::size_t first = body.find(R"("aaaa")");
  REQUIRE(first != std::string::npos);
  CHECK(body.find(R"("aaaa")", first + 1) == std::string::npos);  // the duplicates sent once
  CHECK(body.find(R"("bbbbbbbb")") != std::string::npos);
  const std::int64_t b = tokens_used(client, "pk_bill_b");
  const std::int64_t c = tokens_used(client, "pk_bill_c");
  CHECK(b == 40);
  CHECK(c == 80);
  CHECK(b + c == 120);
  CHECK(client.metrics().requests.prompt_tokens == 120);
}

// --- 2. Counters ------------------------------------------------------------------------------
// docs/tenants.md, "Upstream protection": the AIMD limit cuts, breaker openings and refusals,
// and each model's limit, exported in metrics() and the Prometheus text.

TEST_CASE("counters: a 429/1302 halves the model's limit, seen in metrics() and Prometheus",
          "[counters]") {
  auto server = start_mock();
  Fault busy;  // "too many concurrent requests" once; the free retry is answered
  busy.status = 429;
  busy.body = R"({"error":{"code":"1302","message":"High concurrency usage of this API"}})";
  server->add_fault(busy);
  Config config = config_for(*server);
  config.admission.model_concurrency = 8;
  auto client = make_client(config);
  const auto before = client.metrics();
  CHECK(before.admission.concurrency_decreases == 0);
  CHECK(before.admission.model_concurrency_max == 8);
  CHECK(before.admission.model_limits.empty());

  ChatRequest r = ask("throttled");
  r.model = "glm-4.5-air";
  auto reply = client.complete(r);
  INFO((reply ? "" : reply.error().describe()));
  REQUIRE(reply);
  CHECK(reply->attempts == 2);
  const auto m = client.metrics();
  CHECK(m.admission.concurrency_decreases == 1);
  CHECK(m.admission.model_concurrency_max == 8);
  REQUIRE(m.admission.model_limits.size() == 1);
  CHECK(m.admission.model_limits.at("glm-4.5-air") == 4);
  CHECK(m.admission.breaker_opened == 0);
  const std::string json = m.to_json();
  CHECK(json.find(R"("admission":{"concurrency_decreases":1,"breaker_opened":0,)"
                  R"("breaker_rejections":0,"model_concurrency_max":8,)"
                  R"("model_limits":{"glm-4.5-air":4}})") != std::string::npos);

  const std::string text = client.prometheus_text();
  CHECK(prometheus_line(text, "glm_proxy_model_concurrency_decreases_total ") ==
        "glm_proxy_model_concurrency_decreases_total 1");
  CHECK(prometheus_line(text, "glm_proxy_model_concurrency_max ") ==
        "glm_proxy_model_concurrency_max 8");
  CHECK(prometheus_line(text, "glm_proxy_model_concurrency_limit{") ==
        R"(glm_proxy_model_concurrency_limit{model="glm-4.5-air"} 4)");
  CHECK(prometheus_line(text, "# TYPE glm_proxy_model_concurrency_limit ") ==
        "# TYPE glm_proxy_model_concurrency_limit gauge");
  CHECK(prometheus_line(text, "# TYPE glm_proxy_model_concurrency_decreases_total ") ==
        "# TYPE glm_proxy_model_concurrency_decreases_total counter");
}

TEST_CASE("counters: breaker openings and refusals, seen in metrics() and Prometheus",
          "[counters]") {
  auto server = start_mock();
  Fault down;
  down.times = 2;
  down.status = 503;
  down.body = R"({"error":{"message":"down"}})";
  server->add_fault(down);
  Config config = config_for(*server);
  config.retry.max_attempts = 1;
  config.admission.breaker_failures = 2;
  config.admission.breaker_cooldown = 60s;  // stays open for the rest of the test
  auto client = make_client(config);
  for (int i = 0; i < 2; ++i) REQUIRE_FALSE(client.complete(ask("down " + std::to_string(i))));
  for (int i = 0; i < 3; ++i) {
    auto fast = client.complete(ask("refused " + std::to_string(i)));
    REQUIRE_FALSE(fast);
    CHECK(fast.error().upstream_code == "circuit_open");
  }
  CHECK(server->stats().chat_requests == 2);
  const auto m = client.metrics();
  CHECK(m.admission.breaker_opened == 1);
  CHECK(m.admission.breaker_rejections == 3);
  CHECK(m.admission.concurrency_decreases == 0);
  CHECK(m.admission.model_limits.empty());  // 503s say nothing about concurrency
  const std::string text = client.prometheus_text();
  CHECK(prometheus_line(text, "glm_proxy_breaker_opened_total ") ==
        "glm_proxy_breaker_opened_total 1");
  CHECK(prometheus_line(text, "glm_proxy_breaker_rejections_total ") ==
        "glm_proxy_breaker_rejections_total 3");
  CHECK(prometheus_line(text, "# TYPE glm_proxy_breaker_rejections_total ") ==
        "# TYPE glm_proxy_breaker_rejections_total counter");
  CHECK(prometheus_line(text, "glm_proxy_model_concurrency_limit{").empty());
}

// --- 3. Cancel --------------------------------------------------------------------------------
// docs/streaming.md: "on_event returning false cancels: stream() returns Cancelled at once and
// the admission slot is freed." The connection may be read out afterwards (HTTP/1.1, up to
// 100 ms / 64 KiB), but the slot is not held for it.

namespace {

using SteadyClock = std::chrono::steady_clock;

// A mock whose streams keep sending events every 5 ms: a cancelled stream's read-out would
// last its whole 100 ms (kDrainTime), far from its 64 KiB.
std::unique_ptr<MockUpstream> endless_stream_mock() {
  glmproxy::mock::MockOptions options;
  options.stream_chunks = 500;
  options.stream_event_delay = 5ms;
  return start_mock(options);
}

struct AfterCancel {
  int in_use = -1;                        // pool.in_use as stream() returned
  SteadyClock::duration next_answered{};  // from the cancel to the next request's answer
};

// Cancels a stream that would never end at its first text delta, then sends the next request.
AfterCancel cancel_then_next(ProxyClient& client, MockUpstream& server) {
  Fault endless;
  endless.hold_open = true;
  server.add_fault(endless);  // the stream only; the next request is answered normally
  SteadyClock::time_point cancelled;
  auto reply = client.stream(ask("a long story"), [&](const StreamEvent& e) {
    if (e.type != StreamEvent::Type::Text) return true;
    cancelled = SteadyClock::now();
    return false;
  });
  AfterCancel out;
  out.in_use = client.metrics().pool.in_use;
  REQUIRE_FALSE(reply);
  REQUIRE(reply.error().code == ErrorCode::Cancelled);
  auto next = client.complete(ask("next"));
  out.next_answered = SteadyClock::now() - cancelled;
  INFO((next ? "" : next.error().describe()));
  REQUIRE(next);
  return out;
}

// Three rounds: each cancelled stream's slot is free when stream() returns (published before
// it is answered), and the next request never waits for the slot. Before the fix the next
// request waited for the read-out's end, 100 ms after the cancel at the earliest, in every
// round; now it is answered at once: the best of three rounds shows it without a tight bound.
void check_slot_freed_at_once(ProxyClient& client, MockUpstream& server) {
  auto best = SteadyClock::duration::max();
  for (int round = 0; round < 3; ++round) {
    const AfterCancel r = cancel_then_next(client, server);
    CHECK(r.in_use == 0);
    best = std::min(best, r.next_answered);
  }
  const auto m = client.metrics();
  CHECK(m.pool.acquired == 6);
  CHECK(m.pool.acquire_wait_p99_ms < 50.0);  // none waited for a slot (same loop turn: ~0)
  CHECK(best < 100ms);                       // nor for the connection a read-out held
  CHECK(server.stats().stream_requests == 3);
  CHECK(server.stats().chat_requests == 6);
}

}  // namespace

TEST_CASE("cancel: a cancelled stream frees its connection slot at once (pool of one)",
          "[cancel]") {
  auto server = endless_stream_mock();
  Config config = config_for(*server);
  config.pool.max_connections = 1;  // the next request needs the read-out's connection too
  config.pool.min_connections = 0;
  auto client = make_client(config);
  check_slot_freed_at_once(client, *server);
}

TEST_CASE("cancel: a cancelled stream frees its model's concurrency slot at once", "[cancel]") {
  auto server = endless_stream_mock();
  Config config = config_for(*server);
  config.pool.max_connections = 4;
  config.pool.min_connections = 0;
  config.admission.model_concurrency = 1;  // one request of the model on the wire at a time
  auto client = make_client(config);
  check_slot_freed_at_once(client, *server);  // the next requests are of the same model
}

// --- 4. Tenant keys ---------------------------------------------------------------------------
// docs/tenants.md: "Without APIKEYS_FILE requests go out with ZAI_API_KEY and api_key is
// ignored." Ignored means ignored by the cache and by coalescing too; with a key file each
// tenant keeps its own answers.

TEST_CASE("tenant keys: without a key file api_key splits neither cache nor coalescing", "[keys]") {
  auto server = start_mock();
  SECTION("cache") {
    Config config = config_for(*server);
    config.cache.enabled = true;
    auto client = make_client(config);
    auto first = client.complete(ask("cached", "someone"));
    auto second = client.complete(ask("cached", "someone else"));
    REQUIRE(first);
    REQUIRE(second);
    CHECK_FALSE(first->from_cache);
    CHECK(second->from_cache);
    CHECK(server->stats().chat_requests == 1);
    auto e1 = client.embed(embedding({"vector"}, "someone"));
    auto e2 = client.embed(embedding({"vector"}, "someone else"));
    REQUIRE(e1);
    REQUIRE(e2);
    CHECK(e2->from_cache);
    CHECK(server->stats().embeddings_requests == 1);
  }
  SECTION("coalescing") {
    Fault slow;  // the first answer takes a while: the second request arrives while it is out
    slow.delay_before_headers = 500ms;
    server->add_fault(slow);
    auto client = make_client(config_for(*server));
    std::promise<Result<ChatResponse>> a, b;
    client.complete_async(ask("together", "someone"),
                          [&](Result<ChatResponse> r) { a.set_value(std::move(r)); });
    client.complete_async(ask("together", "someone else"),
                          [&](Result<ChatResponse> r) { b.set_value(std::move(r)); });
    auto ra = a.get_future().get();
    auto rb = b.get_future().get();
    REQUIRE(ra);
    REQUIRE(rb);
    CHECK(server->stats().chat_requests == 1);
    CHECK(client.metrics().coalescing.joined == 1);
  }
}

TEST_CASE("tenant keys: with a key file tenants never share answers", "[keys]") {
  auto server = start_mock();
  KeyFile file(tenants_file({"pk_tenant_one", "pk_tenant_two"}));
  SECTION("cache") {
    Config config = config_for(*server);
    config.keys.file = file.path.string();
    config.cache.enabled = true;
    auto client = make_client(config);
    auto first = client.complete(ask("cached", "pk_tenant_one"));
    auto second = client.complete(ask("cached", "pk_tenant_two"));
    auto again = client.complete(ask("cached", "pk_tenant_one"));
    REQUIRE(first);
    REQUIRE(second);
    REQUIRE(again);
    CHECK_FALSE(second->from_cache);
    CHECK(again->from_cache);
    CHECK(server->stats().chat_requests == 2);
    auto e1 = client.embed(embedding({"vector"}, "pk_tenant_one"));
    auto e2 = client.embed(embedding({"vector"}, "pk_tenant_two"));
    REQUIRE(e1);
    REQUIRE(e2);
    CHECK_FALSE(e2->from_cache);
    CHECK(server->stats().embeddings_requests == 2);
  }
  SECTION("coalescing") {
    Fault slow;
    slow.delay_before_headers = 300ms;
    slow.times = 2;
    server->add_fault(slow);
    Config config = config_for(*server);
    config.keys.file = file.path.string();
    auto client = make_client(config);
    std::promise<Result<ChatResponse>> a, b;
    client.complete_async(ask("together", "pk_tenant_one"),
                          [&](Result<ChatResponse> r) { a.set_value(std::move(r)); });
    client.complete_async(ask("together", "pk_tenant_two"),
                          [&](Result<ChatResponse> r) { b.set_value(std::move(r)); });
    REQUIRE(a.get_future().get());
    REQUIRE(b.get_future().get());
    CHECK(server->stats().chat_requests == 2);
    CHECK(client.metrics().coalescing.joined == 0);
  }
}

// --- 5. Callbacks -----------------------------------------------------------------------------
// docs/transport.md: completion callbacks run on the callback executor, never on the caller's
// stack.

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
  // client is being destroyed: that one is answered too (ShuttingDown).
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

// A client destroyed from one of its own callbacks is on one of its own threads (a callback pool
// thread), which cannot join itself (std::thread::join would throw in a destructor: the process
// would end). The shutdown goes to a thread of its own; the pending request is still answered
// once.
TEST_CASE("callbacks: a client destroyed from its own callback shuts down on another thread",
          "[callbacks]") {
  auto task_count = [] {
    std::size_t n = 0;
    for ([[maybe_unused]] const auto& entry :
         std::filesystem::directory_iterator("/proc/self/task")) {
      ++n;
    }
    return n;
  };
  auto server = start_mock();
  Config config = config_for(*server);
  config.retry.max_attempts = 1;
  const std::size_t before = task_count();
  auto* client = new ProxyClient(make_client(config));
  const std::thread::id caller = std::this_thread::get_id();
  std::promise<Answer> pending;
  std::promise<void> deleted;
  std::atomic<bool> first_ok{false};
  client->complete_async(ask("first"), [&, client](Result<ChatResponse> first) {
    first_ok = static_cast<bool>(first);
    Fault slow;  // the next request is still on the wire when the client goes
    slow.delay_before_headers = 5s;
    server->add_fault(slow);
    client->complete_async(ask("second"), [&](Result<ChatResponse> r) {
      pending.set_value({std::this_thread::get_id(), false, static_cast<bool>(r),
                         r ? ErrorCode::Internal : r.error().code});
    });
    delete client;  // from the I/O thread: returns at once
    deleted.set_value();
  });
  REQUIRE(deleted.get_future().wait_for(30s) == std::future_status::ready);
  CHECK(first_ok);
  auto answer = pending.get_future();
  REQUIRE(answer.wait_for(30s) == std::future_status::ready);
  const Answer a = answer.get();
  CHECK(a.thread != caller);
  CHECK_FALSE(a.ok);
  CHECK((a.code == ErrorCode::Cancelled || a.code == ErrorCode::ShuttingDown));
  // The shutdown finishes: the I/O thread and the one that joined it are gone.
  const auto until = std::chrono::steady_clock::now() + 30s;
  while (task_count() > before && std::chrono::steady_clock::now() < until) {
    std::this_thread::sleep_for(10ms);
  }
  CHECK(task_count() == before);
}

// --- 6. ZAI_API_KEY ---------------------------------------------------------------------------
// Tenant keys are local identities: upstream, every request carries ZAI_API_KEY, with a key
// registry or without, and never the tenant's key.

TEST_CASE("upstream key: with a key file requests carry ZAI_API_KEY, never the tenant key",
          "[keys]") {
  auto server = start_mock();
  const std::string tenant = "pk_secret_tenant_key_42";
  KeyFile file(tenants_file({tenant}));
  Config config = config_for(*server);
  config.keys.file = file.path.string();
  auto client = make_client(config);
  REQUIRE(client.complete(ask("openai", tenant)));
  ChatRequest anthropic = ask("anthropic", tenant);
  anthropic.protocol = glmproxy::Protocol::Anthropic;
  REQUIRE(client.complete(anthropic));
  REQUIRE(client.stream(ask("stream", tenant), nullptr));
  REQUIRE(client.embed(embedding({"vector"}, tenant)));
  const auto recorded = server->recorded();
  REQUIRE(recorded.size() == 4);
  for (const auto& r : recorded) {
    INFO(r.path);
    if (r.path.find("/messages") != std::string::npos) {
      CHECK(r.header("x-api-key") == config.upstream.api_key);
      CHECK_FALSE(r.header("authorization"));
    } else {
      CHECK(r.header("authorization") == "Bearer " + config.upstream.api_key);
    }
    for (const auto& [name, value] : r.headers) CHECK(value.find(tenant) == std::string::npos);
    CHECK(r.body.find(tenant) == std::string::npos);
  }
}
