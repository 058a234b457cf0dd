// Behaviours that docs/transport.md and docs/streaming.md promise, one test each, against the
// mock upstream. Each test quotes the sentence it checks; docs/transport.md lists them all.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <future>
#include <mutex>
#include <random>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "glmproxy/mock/mock_upstream.hpp"
#include "glmproxy/proxy_client.hpp"
#include "support/mock_client.hpp"
#include "transport/backoff.hpp"

using glmproxy::ChatRequest;
using glmproxy::ChatResponse;
using glmproxy::Config;
using glmproxy::ErrorCode;
using glmproxy::Protocol;
using glmproxy::ProxyClient;
using glmproxy::Result;
using glmproxy::StreamEvent;
using glmproxy::mock::Fault;
using glmproxy::mock::MockOptions;
using glmproxy::mock::MockUpstream;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

using test_support::config_for;
using test_support::make_client;
using test_support::numbered;
using test_support::start_mock;

namespace {

ChatRequest hello(Protocol protocol = Protocol::OpenAI) {
  ChatRequest r;
  r.protocol = protocol;
  r.messages = {{"user", "Say hello."}};
  return r;
}

// A loopback port nothing listens on (bound, then closed): connections to it are refused.
std::uint16_t closed_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  REQUIRE(fd >= 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  socklen_t len = sizeof addr;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  ::close(fd);
  return ntohs(addr.sin_port);
}

// Waits (generously) until `done` holds; false if it never did.
bool eventually(const std::function<bool()>& done, std::chrono::milliseconds limit = 20s) {
  const auto give_up = Clock::now() + limit;
  while (!done()) {
    if (Clock::now() > give_up) return false;
    std::this_thread::sleep_for(2ms);
  }
  return true;
}

// An OpenAI stream of `deltas`, the last chunk carrying finish_reason "stop" when `finish` is
// set, and `data: [DONE]` when `done` is.
std::string openai_sse(const std::vector<std::string>& deltas, bool finish, bool done) {
  std::string body;
  for (const std::string& d : deltas) {
    body += R"(data: {"id":"c1","model":"glm-4.7","choices":[{"index":0,"delta":{"content":")" + d +
            "\"},\"finish_reason\":null}]}\n\n";
  }
  if (finish)
    body += R"(data: {"id":"c1","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]})"
            "\n\n";
  if (done) body += "data: [DONE]\n\n";
  return body;
}

// An Anthropic stream of `text`, with its message_delta stop reason; message_stop when `stop`.
std::string anthropic_sse(const std::string& text, bool stop) {
  std::string body =
      "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"m1\","
      "\"model\":\"glm-4.7\",\"usage\":{\"input_tokens\":3,\"output_tokens\":0}}}\n\n"
      "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,"
      "\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n"
      "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,"
      "\"delta\":{\"type\":\"text_delta\",\"text\":\"" +
      text +
      "\"}}\n\n"
      "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":"
      "\"end_turn\"},\"usage\":{\"output_tokens\":2}}\n\n";
  if (stop) body += "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n";
  return body;
}

}  // namespace

// --- retries ----------------------------------------------------------------------------

// transport.md, Retries: "Otherwise it is full-jitter exponential backoff: uniform in
// [0, min(GLMPROXY_RETRY_MAX_DELAY_MS, GLMPROXY_RETRY_BASE_DELAY_MS × 2^(attempt−1))]."
TEST_CASE("docs: the backoff is full jitter, uniform in [0, min(max, base * 2^(attempt-1))]",
          "[docs][retry]") {
  glmproxy::RetryConfig retry;
  retry.base_delay = 100ms;
  retry.max_delay = 1000ms;
  using glmproxy::detail::backoff_cap;
  CHECK(backoff_cap(retry, 1) == 100ms);
  CHECK(backoff_cap(retry, 2) == 200ms);
  CHECK(backoff_cap(retry, 3) == 400ms);
  CHECK(backoff_cap(retry, 4) == 800ms);
  CHECK(backoff_cap(retry, 5) == 1000ms);   // the cap
  CHECK(backoff_cap(retry, 20) == 1000ms);  // and no overflow far past it
  CHECK(backoff_cap(retry, 1000) == 1000ms);
  glmproxy::RetryConfig huge;
  huge.base_delay = std::chrono::milliseconds(600'000);
  huge.max_delay = std::chrono::milliseconds(3'600'000);
  CHECK(backoff_cap(huge, 64) == huge.max_delay);
  glmproxy::RetryConfig zero;
  zero.base_delay = 0ms;
  CHECK(backoff_cap(zero, 3) == 0ms);

  // Uniform over the whole range: both ends are reached and the mean is the middle. (A fixed
  // seed: the check is exact for this sequence, and true of any uniform one.)
  std::mt19937_64 rng(12345);
  for (int attempt = 1; attempt <= 6; ++attempt) {
    const auto cap = backoff_cap(retry, attempt).count();
    constexpr int kSamples = 4000;
    std::int64_t low = cap, high = 0, sum = 0;
    int outside = 0;
    for (int i = 0; i < kSamples; ++i) {
      const auto wait = glmproxy::detail::backoff_delay(retry, attempt, rng).count();
      outside += wait < 0 || wait > cap ? 1 : 0;
      low = std::min(low, wait);
      high = std::max(high, wait);
      sum += wait;
    }
    INFO("attempt " << attempt << ", cap " << cap);
    CHECK(outside == 0);
    CHECK(low <= cap / 20);  // full jitter starts at 0, not at cap/2 ("equal jitter")
    CHECK(high >= cap - cap / 20);
    const double mean = static_cast<double>(sum) / kSamples;
    CHECK(mean == Approx(static_cast<double>(cap) / 2).epsilon(0.05));
  }
}

// transport.md, Retries: "`send()` does not retry on status (the caller sees every answer),
// only on connection failures."
TEST_CASE("docs: send() does not retry on status, only on connection failures",
          "[docs][retry][send]") {
  auto server = start_mock();
  auto client = make_client(config_for(*server));
  glmproxy::HttpRequest get;
  get.path = "models";
  for (int status : {503, 429, 500, 408}) {
    INFO(status);
    server->reset();
    Fault f;
    f.status = status;
    f.headers = {{"Retry-After", "0"}};
    f.path_contains = "/models";
    server->add_fault(f);  // once: a retry would get the normal 200
    auto r = client.send(get);
    REQUIRE(r);
    CHECK(r->status == status);
    CHECK(server->stats().models_requests == 1);
  }
  // A connection closed before any response byte: sent again, and the answer is the retry's.
  // (A new client: on a fresh connection libcurl does not retry by itself, as it does once
  // when a reused connection turns out dead.)
  server->reset();
  auto fresh = make_client(config_for(*server));
  Fault silent;
  silent.path_contains = "/models";
  silent.delay_before_headers = 10s;
  server->add_fault(silent);
  std::promise<Result<glmproxy::HttpResponse>> answer;
  std::thread caller([&] { answer.set_value(fresh.send(get)); });
  REQUIRE(eventually([&] { return server->stats().models_requests == 1; }));
  server->drop_connections();
  auto r = answer.get_future().get();
  caller.join();
  INFO((r ? "" : r.error().describe()));
  REQUIRE(r);
  CHECK(r->status == 200);
  CHECK(server->stats().models_requests == 2);
}

// --- admission --------------------------------------------------------------------------

// transport.md, Admission: "a request whose model is at its limit lets later requests of other
// models pass."
TEST_CASE("docs: a request held by its model's limit lets other models' requests pass",
          "[docs][admission]") {
  auto server = start_mock();
  Config config = config_for(*server);
  config.pool.max_connections = 4;
  config.admission.model_concurrency = 1;  // one request per model on the wire
  config.pool.acquire_timeout = 30s;
  auto client = make_client(config);
  Fault slow;  // the first request (model a) holds its model's only slot for a while
  slow.delay_before_headers = 3s;
  server->add_fault(slow);

  std::mutex mu;
  std::vector<std::string> finished;  // in the order the answers came
  std::atomic<int> done{0};
  auto send = [&](const std::string& model, int i, const std::string& name) {
    ChatRequest r = numbered(i);
    r.model = model;
    client.complete_async(r, [&, name](Result<ChatResponse> reply) {
      {
        std::lock_guard lock(mu);
        finished.push_back(name + (reply ? "" : " failed: " + reply.error().describe()));
      }
      done.fetch_add(1);
    });
  };
  send("model-a", 1, "a1");
  REQUIRE(eventually([&] { return server->stats().chat_requests == 1; }));  // a1 on the wire
  send("model-a", 2, "a2");  // waits: model a is at its limit
  send("model-b", 3, "b1");  // queued after a2, but its model is free
  REQUIRE(eventually([&] { return done.load() == 3; }, 60s));
  std::lock_guard lock(mu);
  CHECK(finished == std::vector<std::string>{"b1", "a1", "a2"});
  const auto recorded = server->recorded();
  REQUIRE(recorded.size() == 3);
  CHECK(recorded[1].body.find("\"model-b\"") != std::string::npos);  // b1 went before a2
  CHECK(recorded[2].body.find("\"model-a\"") != std::string::npos);
}

// transport.md, Admission: "If that fails, `create()` still succeeds and the failure goes to the
// logger." ("waiting at most GLMPROXY_CONNECT_TIMEOUT_MS for them")
TEST_CASE("docs: POOL_WARM against an unreachable upstream: create() succeeds and logs",
          "[docs][warm]") {
  Config config;
  config.upstream.openai_base_url = "http://127.0.0.1:" + std::to_string(closed_port()) + "/v4";
  config.pool.warm = true;
  config.pool.min_connections = 2;
  config.timeouts.connect = 500ms;
  auto lines = std::make_shared<std::vector<std::pair<glmproxy::LogLevel, std::string>>>();
  auto mu = std::make_shared<std::mutex>();
  config.logger = [lines, mu](glmproxy::LogLevel level, std::string_view line) {
    std::lock_guard lock(*mu);
    lines->emplace_back(level, std::string(line));
  };
  const auto start = Clock::now();
  auto client = ProxyClient::create(config);
  const auto took = Clock::now() - start;
  INFO((client ? "" : client.error().describe()));
  REQUIRE(client);
  CHECK(took < 5s);  // the warm-up gave up after about one connect timeout (500 ms)
  {
    std::lock_guard lock(*mu);
    REQUIRE(lines->size() == 1);
    CHECK(lines->front().first == glmproxy::LogLevel::Warn);
    CHECK_THAT(lines->front().second, Catch::StartsWith("pool warm-up failed"));
    CHECK_THAT(lines->front().second, Catch::Contains("ConnectionFailed"));
  }
  // The client works: its requests fail as the upstream makes them fail, no more.
  auto reply = client->complete(hello());
  REQUIRE_FALSE(reply);
  CHECK(reply.error().code == ErrorCode::ConnectionFailed);
}

// --- timeouts ---------------------------------------------------------------------------

// transport.md, Timeouts: GLMPROXY_TOTAL_TIMEOUT_MS is measured from "the call, across attempts
// and backoff" and its error message starts "`total timeout`"; "All three are
// `ErrorCode::Timeout`."
TEST_CASE("docs: the total timeout's message starts with 'total timeout', across attempts",
          "[docs][timeout]") {
  auto server = start_mock();
  Config config = config_for(*server);
  config.timeouts.first_byte = 60s;  // only the total deadline can end these
  config.timeouts.connect = 100ms;   // (validate(): not above the total)
  SECTION("one attempt that never answers") {
    config.timeouts.total = 400ms;
    auto client = make_client(config);
    Fault silent;
    silent.delay_before_headers = 5s;
    server->add_fault(silent);
    const auto start = Clock::now();
    auto reply = client.complete(hello());
    REQUIRE_FALSE(reply);
    CHECK(Clock::now() - start < 3s);
    CHECK(reply.error().code == ErrorCode::Timeout);
    CHECK_THAT(reply.error().message, Catch::StartsWith("total timeout"));
    CHECK_THAT(reply.error().message, Catch::Contains("GLMPROXY_TOTAL_TIMEOUT_MS=400"));
    CHECK(server->stats().chat_requests == 1);
  }
  SECTION("the deadline holds across a retry: the second attempt gets what is left") {
    config.timeouts.total = 3000ms;
    auto client = make_client(config);
    Fault busy;  // the first attempt takes 2 s of the 3 and is answered 503 (retried)
    busy.status = 503;
    busy.delay_before_headers = 2000ms;
    server->add_fault(busy);
    Fault silent;  // the second never answers
    silent.delay_before_headers = 20s;
    server->add_fault(silent);
    const auto start = Clock::now();
    auto reply = client.complete(hello());
    const auto took = Clock::now() - start;
    REQUIRE_FALSE(reply);
    CHECK(reply.error().code == ErrorCode::Timeout);
    CHECK_THAT(reply.error().message, Catch::StartsWith("total timeout"));
    CHECK(server->stats().chat_requests == 2);
    CHECK(took >= 2900ms);
    CHECK(took < 4500ms);  // a fresh 3 s for the second attempt would end after 5 s
  }
}

// --- streams ------------------------------------------------------------------------------

// streaming.md: "A stream that ends cleanly after its finish reason but without `[DONE]` is
// accepted, as some compatible servers omit it." (and, same paragraph, one without its end
// marker is otherwise "`BadResponse` 'the stream was cut'")
TEST_CASE("docs: a stream that ends cleanly after its finish reason needs no [DONE]",
          "[docs][stream]") {
  auto server = start_mock();
  Config config = config_for(*server);
  config.retry.max_attempts = 1;
  auto client = make_client(config);
  auto run = [&](Protocol protocol, std::string sse) {
    Fault f;
    f.sse_body = std::move(sse);
    server->add_fault(f);
    std::vector<StreamEvent::Type> types;
    auto r = client.stream(hello(protocol), [&](const StreamEvent& e) {
      types.push_back(e.type);
      return true;
    });
    return std::make_pair(std::move(r), types);
  };
  SECTION("OpenAI: finish reason, clean end, no [DONE]: the reply") {
    auto [r, types] = run(Protocol::OpenAI, openai_sse({"Hel", "lo"}, true, false));
    INFO((r ? "" : r.error().describe()));
    REQUIRE(r);
    CHECK(r->content == "Hello");
    CHECK(r->finish_reason == "stop");
    CHECK(types.back() == StreamEvent::Type::Finish);  // no Done event was made up
  }
  SECTION("Anthropic: stop reason, clean end, no message_stop: the reply") {
    auto [r, types] = run(Protocol::Anthropic, anthropic_sse("Hello", false));
    INFO((r ? "" : r.error().describe()));
    REQUIRE(r);
    CHECK(r->content == "Hello");
    CHECK(r->finish_reason == "end_turn");
  }
  SECTION("no finish reason and no [DONE]: cut") {
    auto [r, types] = run(Protocol::OpenAI, openai_sse({"Hel", "lo"}, false, false));
    REQUIRE_FALSE(r);
    CHECK(r.error().code == ErrorCode::BadResponse);
    CHECK_THAT(r.error().message, Catch::Contains("the stream was cut"));
  }
  SECTION("a finish reason, then the body ends inside an event: cut") {
    auto [r, types] =
        run(Protocol::OpenAI, openai_sse({"Hel", "lo"}, true, false) + "data: {\"id\":\"c1\"");
    REQUIRE_FALSE(r);
    CHECK(r.error().code == ErrorCode::BadResponse);
    CHECK_THAT(r.error().message, Catch::Contains("in the middle of an event"));
  }
}

// streaming.md: "An exception thrown by `on_event` ends the stream with `Internal` (it never
// unwinds through libcurl)."
TEST_CASE("docs: an exception thrown by on_event ends the stream with Internal", "[docs][stream]") {
  MockOptions options;
  options.stream_chunks = 8;
  auto server = start_mock(options);
  Config config = config_for(*server);
  config.cache.enabled = true;  // the replay of a cached stream calls on_event too
  auto client = make_client(config);
  int calls = 0;
  auto throwing = [&](const StreamEvent& e) -> bool {
    ++calls;
    if (e.type == StreamEvent::Type::Text) throw std::runtime_error("from on_event");
    return true;
  };
  SECTION("a live stream") {
    Result<ChatResponse> r = glmproxy::make_error(ErrorCode::Internal, "unset");
    REQUIRE_NOTHROW(r = client.stream(hello(), throwing));
    REQUIRE_FALSE(r);
    CHECK(r.error().code == ErrorCode::Internal);
    CHECK_THAT(r.error().message, Catch::Contains("on_event callback threw"));
    const int at_throw = calls;
    CHECK(at_throw >= 1);
    std::this_thread::sleep_for(100ms);
    CHECK(calls == at_throw);                   // nothing was delivered after the throw
    CHECK(server->stats().chat_requests == 1);  // not retried: an event had been delivered
    // The I/O thread lives on: the next stream is whole.
    auto next = client.stream(numbered(1), [](const StreamEvent&) { return true; });
    INFO((next ? "" : next.error().describe()));
    CHECK(next);
  }
  SECTION("a cached stream being replayed") {
    REQUIRE(client.stream(hello(), [](const StreamEvent&) { return true; }));
    Result<ChatResponse> r = glmproxy::make_error(ErrorCode::Internal, "unset");
    REQUIRE_NOTHROW(r = client.stream(hello(), throwing));
    REQUIRE_FALSE(r);
    CHECK(r.error().code == ErrorCode::Internal);
    CHECK_THAT(r.error().message, Catch::Contains("on_event callback threw"));
    CHECK(server->stats().chat_requests == 1);  // replayed from the cache, not sent
    CHECK(calls >= 1);
  }
}

// caching.md, Single-flight: "Streams are not coalesced (a late joiner would have missed the
// first events)." (streaming, batched or not: each stream() makes its own call)
TEST_CASE("docs: identical concurrent streams each make their own upstream call",
          "[docs][stream][coalesce]") {
  MockOptions options;
  options.stream_chunks = 6;
  options.stream_event_delay = 40ms;  // each stream takes a while: they overlap
  auto server = start_mock(options);
  Config config = config_for(*server);
  SECTION("coalescing on (the default)") {}
  SECTION("coalescing on, and all of them in one batch") {
    config.batch.enabled = true;
    config.batch.window = 300ms;
  }
  REQUIRE(config.cache.coalesce);
  auto client = make_client(config);
  constexpr int kStreams = 4;
  std::vector<Result<ChatResponse>> results(kStreams,
                                            glmproxy::make_error(ErrorCode::Internal, "unset"));
  std::vector<std::string> texts(kStreams);
  std::promise<void> go;
  std::shared_future<void> start = go.get_future().share();
  std::vector<std::thread> threads;
  for (int i = 0; i < kStreams; ++i) {
    threads.emplace_back([&, i] {
      const auto slot = static_cast<std::size_t>(i);
      start.wait();
      results[slot] = client.stream(hello(), [&texts, slot](const StreamEvent& e) {
        if (e.type == StreamEvent::Type::Text) texts[slot] += e.text;
        return true;
      });
    });
  }
  go.set_value();
  for (auto& t : threads) t.join();
  for (std::size_t i = 0; i < results.size(); ++i) {
    INFO(i << ": " << (results[i] ? "" : results[i].error().describe()));
    REQUIRE(results[i]);
    CHECK(results[i]->content == options.reply_text);
    CHECK(texts[i] == options.reply_text);  // every caller saw every event
  }
  CHECK(server->stats().stream_requests == kStreams);
  CHECK(client.metrics().coalescing.joined == 0);
}
