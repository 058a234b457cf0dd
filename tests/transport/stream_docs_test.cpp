// What docs/streaming.md (and caching.md, for streams) promise, one test per statement, against
// the mock upstream. Each test quotes what it checks; docs/transport.md's table lists them.

#include <catch2/catch.hpp>
#include <chrono>
#include <future>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "glmproxy/mock/mock_upstream.hpp"
#include "glmproxy/proxy_client.hpp"
#include "support/docs_support.hpp"
#include "support/mock_client.hpp"

using glmproxy::ChatRequest;
using glmproxy::ChatResponse;
using glmproxy::Config;
using glmproxy::ErrorCode;
using glmproxy::Protocol;
using glmproxy::Result;
using glmproxy::StreamEvent;
using glmproxy::mock::Fault;
using glmproxy::mock::MockOptions;
using namespace std::chrono_literals;

using test_support::config_for;
using test_support::hello;
using test_support::make_client;
using test_support::numbered;
using test_support::start_mock;

namespace {

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
