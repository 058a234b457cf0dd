// ProxyClient::stream() against the mock upstream: both protocols, byte-split delivery, cut
// streams, idle timeouts, in-stream errors and retries, cancellation, upload chunking and the
// receive buffer and buffer pool knobs.

#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <optional>
#include <string>
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

namespace {

using test_support::start_mock;

using test_support::hello;  // "Say hello." over a protocol

// What a stream delivered, copied out of the callback (which runs on the thread that called
// stream()).
struct Collected {
  std::vector<std::pair<StreamEvent::Type, std::string>> events;
  glmproxy::Usage usage;

  std::function<bool(const StreamEvent&)> callback(int stop_after_text = -1) {
    return [this, stop_after_text](const StreamEvent& e) {
      events.emplace_back(e.type, e.text);
      if (e.type == StreamEvent::Type::Usage) usage = e.usage;
      return !(stop_after_text >= 0 && e.type == StreamEvent::Type::Text &&
               count(StreamEvent::Type::Text) > stop_after_text);
    };
  }
  std::string text(StreamEvent::Type type = StreamEvent::Type::Text) const {
    std::string out;
    for (const auto& [t, s] : events) {
      if (t == type) out += s;
    }
    return out;
  }
  int count(StreamEvent::Type type) const {
    int n = 0;
    for (const auto& e : events) n += e.first == type ? 1 : 0;
    return n;
  }
};

constexpr const char* kReply = "Streaming works: one token after another, in order.";

MockOptions streaming_mock() {
  MockOptions o;
  o.reply_text = kReply;
  o.reasoning_text = "First I think.";
  o.stream_chunks = 8;
  return o;
}

}  // namespace

TEST_CASE("stream: OpenAI deltas arrive in order and add up to the reply", "[stream]") {
  auto server = start_mock(streaming_mock());
  auto client = make_client(config_for(*server));
  Collected got;
  Result<ChatResponse> reply = client.stream(hello(), got.callback());
  INFO((reply ? "" : reply.error().describe()));
  REQUIRE(reply);
  CHECK(got.text() == kReply);
  CHECK(got.count(StreamEvent::Type::Text) >= 2);
  CHECK(got.text(StreamEvent::Type::Reasoning) == "First I think.");
  CHECK(got.count(StreamEvent::Type::Finish) == 1);
  CHECK(got.count(StreamEvent::Type::Usage) == 1);
  CHECK(got.events.back().first == StreamEvent::Type::Done);
  CHECK(reply->content == kReply);
  CHECK(reply->reasoning_content == "First I think.");
  CHECK(reply->finish_reason == "stop");
  CHECK(reply->usage.completion_tokens > 0);
  CHECK(reply->usage.total_tokens == got.usage.total_tokens);
  CHECK(reply->http_status == 200);
  CHECK(reply->attempts == 1);
  const auto recorded = server->recorded();
  REQUIRE(recorded.size() == 1);
  CHECK(recorded[0].body.find("\"stream\":true") != std::string::npos);
  CHECK(recorded[0].body.find("\"include_usage\":true") != std::string::npos);
  CHECK(recorded[0].header("accept") == "text/event-stream");
  CHECK(server->stats().stream_requests == 1);
}

TEST_CASE("stream: Anthropic events give the same shape", "[stream]") {
  auto server = start_mock(streaming_mock());
  auto client = make_client(config_for(*server));
  Collected got;
  Result<ChatResponse> reply = client.stream(hello(Protocol::Anthropic), got.callback());
  INFO((reply ? "" : reply.error().describe()));
  REQUIRE(reply);
  CHECK(got.text() == kReply);
  CHECK(got.text(StreamEvent::Type::Reasoning) == "First I think.");
  CHECK(reply->finish_reason == "end_turn");
  CHECK(reply->usage.prompt_tokens > 0);
  CHECK(reply->usage.completion_tokens > 0);
  CHECK(got.events.back().first == StreamEvent::Type::Done);
}

TEST_CASE("stream: the body split into 1-byte pieces yields identical events", "[stream]") {
  auto server = start_mock(streaming_mock());
  auto client = make_client(config_for(*server));
  for (Protocol protocol : {Protocol::OpenAI, Protocol::Anthropic}) {
    Collected whole;
    REQUIRE(client.stream(hello(protocol), whole.callback()));
    Fault f;
    f.split_pieces = {1};
    f.delay_between_chunks = 1ms;  // so the pieces reach the client as separate reads
    server->add_fault(f);
    Collected split;
    Result<ChatResponse> reply = client.stream(hello(protocol), split.callback());
    INFO((reply ? "" : reply.error().describe()));
    REQUIRE(reply);
    CHECK(split.events == whole.events);
    CHECK(reply->content == kReply);
  }
}

TEST_CASE("stream: a connection closed mid-stream says the stream was cut", "[stream]") {
  auto server = start_mock(streaming_mock());
  auto client = make_client(config_for(*server));
  Fault f;
  f.close_after_body_bytes = 700;  // inside the content deltas
  f.delay_between_chunks = 1ms;
  server->add_fault(f);
  Collected got;
  Result<ChatResponse> reply = client.stream(hello(), got.callback());
  REQUIRE_FALSE(reply);
  CHECK(reply.error().code == ErrorCode::BadResponse);
  CHECK_THAT(reply.error().message, Catch::Contains("the stream was cut"));
  CHECK(server->stats().chat_requests == 1);  // not sent again: part of it reached the caller
  CHECK_FALSE(got.events.empty());
}

TEST_CASE("stream: silence longer than the idle timeout ends the stream", "[stream]") {
  auto server = start_mock(streaming_mock());
  Config config = config_for(*server);
  config.timeouts.stream_idle = 150ms;
  auto client = make_client(config);
  Fault f;
  f.delay_between_chunks = 1500ms;
  server->add_fault(f);
  const auto start = Clock::now();
  Result<ChatResponse> reply = client.stream(hello(), [](const StreamEvent&) { return true; });
  const auto took = Clock::now() - start;
  REQUIRE_FALSE(reply);
  CHECK(reply.error().code == ErrorCode::Timeout);
  CHECK_THAT(reply.error().message, Catch::Contains("stream idle timeout"));
  CHECK_THAT(reply.error().message, Catch::Contains("GLMPROXY_STREAM_IDLE_TIMEOUT_MS=150"));
  CHECK(took < 1400ms);  // it did not wait for the next event
  CHECK(server->stats().chat_requests == 1);
}

TEST_CASE("stream: an error event before any delta is retried, after one it is not", "[stream]") {
  auto server = start_mock(streaming_mock());
  auto client = make_client(config_for(*server));
  SECTION("Anthropic overloaded_error as the first event: retried, then succeeds") {
    Fault f;
    f.stream_error_after_events = 0;
    server->add_fault(f);
    Collected got;
    Result<ChatResponse> reply = client.stream(hello(Protocol::Anthropic), got.callback());
    INFO((reply ? "" : reply.error().describe()));
    REQUIRE(reply);
    CHECK(reply->attempts == 2);
    CHECK(got.text() == kReply);  // nothing of the failed attempt reached the caller
    CHECK(server->stats().messages_requests == 2);
  }
  SECTION("an error event after text reached the caller is final") {
    Fault f;
    f.stream_error_after_events = 6;
    server->add_fault(f);
    Collected got;
    Result<ChatResponse> reply = client.stream(hello(Protocol::Anthropic), got.callback());
    REQUIRE_FALSE(reply);
    CHECK(reply.error().upstream_code == "overloaded_error");
    CHECK(reply.error().retryable());
    CHECK_FALSE(got.events.empty());
    CHECK(server->stats().messages_requests == 1);
  }
  SECTION("Z.AI 1113 in an OpenAI stream is not retried") {
    Fault f;
    f.stream_error_after_events = 0;
    f.stream_error_json = R"({"error":{"code":"1113","message":"Insufficient balance"}})";
    server->add_fault(f);
    Result<ChatResponse> reply = client.stream(hello(), [](const StreamEvent&) { return true; });
    REQUIRE_FALSE(reply);
    CHECK(reply.error().code == ErrorCode::QuotaExceeded);
    CHECK(server->stats().chat_requests == 1);
  }
}

TEST_CASE("stream: an HTTP error status is an error, retried like complete()", "[stream]") {
  auto server = start_mock(streaming_mock());
  auto client = make_client(config_for(*server));
  Fault f;
  f.status = 503;
  f.body = R"({"error":{"message":"busy"}})";
  server->add_fault(f);
  Result<ChatResponse> reply = client.stream(hello(), [](const StreamEvent&) { return true; });
  INFO((reply ? "" : reply.error().describe()));
  REQUIRE(reply);
  CHECK(reply->attempts == 2);
  f.status = 401;
  f.body = R"({"error":{"message":"bad key"}})";
  server->add_fault(f);
  reply = client.stream(hello(), [](const StreamEvent&) { return true; });
  REQUIRE_FALSE(reply);
  CHECK(reply.error().code == ErrorCode::Unauthorized);
  CHECK(reply.error().http_status == 401);
}

TEST_CASE("stream: cancelling frees the connection and the next request reuses it", "[stream]") {
  auto server = start_mock(streaming_mock());
  Config config = config_for(*server);
  config.pool.max_connections = 1;
  config.pool.min_connections = 1;
  auto client = make_client(config);
  Collected got;
  Result<ChatResponse> reply = client.stream(hello(), got.callback(/*stop_after_text=*/0));
  REQUIRE_FALSE(reply);
  CHECK(reply.error().code == ErrorCode::Cancelled);
  CHECK(got.count(StreamEvent::Type::Text) == 1);
  Result<ChatResponse> next = client.complete(hello());
  INFO((next ? "" : next.error().describe()));
  REQUIRE(next);
  CHECK(server->stats().connections_accepted == 1);
}

TEST_CASE("stream: cancelling a slow stream returns at once and lets the slot go", "[stream]") {
  MockOptions options = streaming_mock();
  options.stream_chunks = 40;
  auto server = start_mock(options);
  Config config = config_for(*server);
  config.pool.max_connections = 1;
  config.pool.min_connections = 1;
  auto client = make_client(config);
  Fault f;
  f.delay_between_chunks = 100ms;  // the whole stream would take > 4 s
  server->add_fault(f);
  const auto start = Clock::now();
  Result<ChatResponse> reply = client.stream(
      hello(), [](const StreamEvent& e) { return e.type != StreamEvent::Type::Text; });
  REQUIRE_FALSE(reply);
  CHECK(reply.error().code == ErrorCode::Cancelled);
  Result<ChatResponse> next = client.complete(hello());
  const auto took = Clock::now() - start;
  REQUIRE(next);
  CHECK(took < 2s);
  // The slow stream's connection was closed (not read to its end), so the next one is new.
  CHECK(server->stats().connections_accepted == 2);
}

TEST_CASE("stream: request bodies above STREAM_REQUEST_CHUNK_SIZE go out in chunks", "[stream]") {
  auto server = start_mock();
  Config config = config_for(*server);
  config.stream.request_chunk_size = 4096;
  auto client = make_client(config);
  ChatRequest big = hello();
  big.messages[0].content = std::string(100'000, 'a');
  REQUIRE(client.complete(big));
  const auto recorded = server->recorded();
  REQUIRE(recorded.size() == 1);
  CHECK(recorded[0].body.find(big.messages[0].content) != std::string::npos);
  CHECK(recorded[0].header("content-length").has_value());
  // The transport's read callback ran once per 4 KiB piece (seen through the stats below).
  const glmproxy::ClientDiagnostics stats = client.diagnostics();
  CHECK(stats.upload_reads >= 100'000 / 4096);
  // A small body is sent in one piece, without the read callback.
  REQUIRE(client.complete(hello()));
  CHECK(client.diagnostics().upload_reads == stats.upload_reads);
}

TEST_CASE("stream: STREAM_BUFFER_POOL_ENABLED reuses buffers, disabled, it allocates", "[stream]") {
  auto server = start_mock(streaming_mock());
  for (bool enabled : {true, false}) {
    Config config = config_for(*server);
    config.stream.buffer_pool_enabled = enabled;
    auto client = make_client(config);
    for (int i = 0; i < 20; ++i) {
      REQUIRE(client.stream(hello(), [](const StreamEvent&) { return true; }));
    }
    const auto d = client.diagnostics();
    CHECK(d.buffers_in_use == 0);
    if (enabled) {
      CHECK(d.buffer_hits >= 19);
      CHECK(d.buffer_misses <= 4);
    } else {
      CHECK(d.buffer_hits == 0);
      CHECK(d.buffer_misses >= 20);
    }
  }
}

TEST_CASE("stream: STREAM_RESPONSE_CHUNK_SIZE bounds each read", "[stream]") {
  MockOptions options = streaming_mock();
  options.reply_text = std::string(200'000, 'z');
  options.stream_chunks = 2;  // two ~100 KB events
  auto server = start_mock(options);
  for (std::size_t size : {std::size_t{1024}, std::size_t{65536}}) {
    Config config = config_for(*server);
    config.stream.response_chunk_size = size;
    auto client = make_client(config);
    std::size_t largest = 0;
    int reads = 0;
    // The largest text delta the client saw is one event; the reads are what the knob bounds,
    // seen as the SSE parser's line buffer having to carry a line over many reads.
    Result<ChatResponse> reply = client.stream(hello(), [&](const StreamEvent& e) {
      if (e.type == StreamEvent::Type::Text) {
        largest = std::max(largest, e.text.size());
        ++reads;
      }
      return true;
    });
    REQUIRE(reply);
    CHECK(reply->content.size() == 200'000);
    CHECK(reads == 2);
    CHECK(largest == 100'000);
    const auto stats = client.diagnostics();
    CHECK(stats.body_reads >= (size == 1024 ? 195u : 4u));
    if (size == 65536) CHECK(stats.body_reads < 100u);
  }
}

TEST_CASE("stream: on_event runs on the calling thread and may call the blocking API", "[stream]") {
  auto server = start_mock(streaming_mock());
  auto client = make_client(config_for(*server));
  const auto caller = std::this_thread::get_id();
  bool all_here = true;
  std::optional<bool> inner;
  Result<ChatResponse> reply = client.stream(hello(), [&](const StreamEvent& e) {
    all_here = all_here && std::this_thread::get_id() == caller;
    if (e.type == StreamEvent::Type::Done) inner = client.complete(hello()).has_value();
    return true;
  });
  REQUIRE(reply);
  CHECK(all_here);
  REQUIRE(inner.has_value());
  CHECK(*inner);
}
