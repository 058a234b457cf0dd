// The chat stream decoder: OpenAI and Anthropic SSE into StreamEvents and the aggregate, fed
// directly (no network), and the zero-allocation property of its steady state.

#include "protocol/chat_stream.hpp"
#include "support/counting_new.hpp"

#include <atomic>
#include <catch2/catch.hpp>
#include <string>
#include <vector>

using glmproxy::ErrorCode;
using glmproxy::Protocol;
using glmproxy::StreamEvent;
using glmproxy::detail::BodySink;
using glmproxy::detail::BufferPool;
using glmproxy::detail::ChatStream;
using glmproxy::detail::StreamCallback;

// Every operator new of this test binary is counted (tests/support/counting_new.hpp).

namespace {

struct Seen {
  StreamEvent::Type type;
  std::string text;
  int tool_index = 0;
  std::string tool_call_id, tool_name;
  glmproxy::Usage usage;
};

struct Recorder {
  std::vector<Seen> events;
  bool stop_at_first_text = false;
  StreamCallback callback = [this](const StreamEvent& e) {
    events.push_back({e.type, e.text, e.tool_index, e.tool_call_id, e.tool_name, e.usage});
    return !(stop_at_first_text && e.type == StreamEvent::Type::Text);
  };

  std::string joined(StreamEvent::Type type) const {
    std::string out;
    for (const Seen& s : events) {
      if (s.type == type) out += s.text;
    }
    return out;
  }
  int count(StreamEvent::Type type) const {
    int n = 0;
    for (const Seen& s : events) n += s.type == type ? 1 : 0;
    return n;
  }
};

// Feeds `body` in pieces of `piece` bytes; returns the first non-Continue action.
BodySink::Action feed(ChatStream& stream, std::string_view body, std::size_t piece) {
  for (std::size_t i = 0; i < body.size(); i += piece) {
    auto action = stream.on_body(body.substr(i, piece));
    if (action != BodySink::Action::Continue) return action;
  }
  return BodySink::Action::Continue;
}

// How a fixture reaches the sink: in pieces of `piece` bytes, or (cut > 0) in two pieces cut
// at byte `cut`.
struct Feeding {
  std::size_t piece = 0;
  std::size_t cut = 0;
};

// Whole, a byte at a time, in `odd`-byte pieces, and cut in two at every byte.
std::vector<Feeding> feedings(std::string_view body, std::size_t odd) {
  std::vector<Feeding> out{{body.size(), 0}, {1, 0}, {odd, 0}};
  for (std::size_t cut = 1; cut < body.size(); ++cut) out.push_back({body.size(), cut});
  return out;
}

BodySink::Action feed(ChatStream& stream, std::string_view body, Feeding how) {
  if (how.cut == 0) return feed(stream, body, how.piece);
  auto action = stream.on_body(body.substr(0, how.cut));
  if (action != BodySink::Action::Continue) return action;
  return stream.on_body(body.substr(how.cut));
}

// The chunk shapes of OpenAI's chat-completion streaming reference (platform.openai.com/docs/
// api-reference/chat-streaming: delta.tool_calls with index, id and function pieces; the
// include_usage chunk with empty choices) and of Z.AI's (docs.z.ai/api-reference/llm/
// chat-completion: delta.reasoning_content).
const std::string kOpenAiStream =
    "data: {\"id\":\"c1\",\"model\":\"glm-4.7\",\"choices\":[{\"index\":0,\"delta\":{\"role\":"
    "\"assistant\",\"content\":\"\"},\"finish_reason\":null}]}\n\n"
    "data: {\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{\"reasoning_content\":\"Let me "
    "think.\"},\"finish_reason\":null}]}\n\n"
    ": keep-alive comment\n\n"
    "data: {\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hel\"},"
    "\"finish_reason\":null}]}\n\n"
    "data: {\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"lo \\u00e9\\n\"},"
    "\"finish_reason\":null}]}\n\n"
    "data: {\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,"
    "\"id\":\"call_1\",\"type\":\"function\",\"function\":{\"name\":\"get_weather\","
    "\"arguments\":\"{\\\"ci\"}}]},\"finish_reason\":null}]}\n\n"
    "data: {\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,"
    "\"function\":{\"arguments\":\"ty\\\":\\\"Paris\\\"}\"}}]},\"finish_reason\":null}]}\n\n"
    "data: {\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":"
    "\"tool_calls\"}]}\n\n"
    "data: {\"id\":\"c1\",\"choices\":[],\"usage\":{\"prompt_tokens\":11,\"completion_tokens\":"
    "7,\"total_tokens\":18}}\n\n"
    "data: [DONE]\n\n";

// The event flow of Anthropic's "Streaming Messages" (docs.anthropic.com/en/docs/build-with-claude/
// streaming): message_start, content blocks with thinking_delta / signature_delta / text_delta
// / input_json_delta, ping, an unknown event type (to be ignored), message_delta, message_stop.
const std::string kAnthropicStream =
    "event: message_start\r\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\","
    "\"model\":\"glm-4.7\",\"usage\":{\"input_tokens\":12,\"output_tokens\":1}}}\r\n\r\n"
    "event: content_block_start\r\ndata: {\"type\":\"content_block_start\",\"index\":0,"
    "\"content_block\":{\"type\":\"thinking\",\"thinking\":\"\"}}\r\n\r\n"
    "event: ping\r\ndata: {\"type\": \"ping\"}\r\n\r\n"
    "event: content_block_delta\r\ndata: {\"type\":\"content_block_delta\",\"index\":0,"
    "\"delta\":{\"type\":\"thinking_delta\",\"thinking\":\"Hmm.\"}}\r\n\r\n"
    "event: content_block_delta\r\ndata: {\"type\":\"content_block_delta\",\"index\":0,"
    "\"delta\":{\"type\":\"signature_delta\",\"signature\":\"abc\"}}\r\n\r\n"
    "event: content_block_stop\r\ndata: {\"type\":\"content_block_stop\",\"index\":0}\r\n\r\n"
    "event: content_block_start\r\ndata: {\"type\":\"content_block_start\",\"index\":1,"
    "\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\r\n\r\n"
    "event: content_block_delta\r\ndata: {\"type\":\"content_block_delta\",\"index\":1,"
    "\"delta\":{\"type\":\"text_delta\",\"text\":\"Hi \"}}\r\n\r\n"
    "event: brand_new_event\r\ndata: {\"type\":\"brand_new_event\",\"x\":1}\r\n\r\n"
    "event: content_block_delta\r\ndata: {\"type\":\"content_block_delta\",\"index\":1,"
    "\"delta\":{\"type\":\"text_delta\",\"text\":\"there\"}}\r\n\r\n"
    "event: content_block_stop\r\ndata: {\"type\":\"content_block_stop\",\"index\":1}\r\n\r\n"
    "event: content_block_start\r\ndata: {\"type\":\"content_block_start\",\"index\":2,"
    "\"content_block\":{\"type\":\"tool_use\",\"id\":\"toolu_1\",\"name\":\"lookup\","
    "\"input\":{}}}\r\n\r\n"
    "event: content_block_delta\r\ndata: {\"type\":\"content_block_delta\",\"index\":2,"
    "\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"{\\\"q\\\":\"}}\r\n\r\n"
    "event: content_block_delta\r\ndata: {\"type\":\"content_block_delta\",\"index\":2,"
    "\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"1}\"}}\r\n\r\n"
    "event: content_block_stop\r\ndata: {\"type\":\"content_block_stop\",\"index\":2}\r\n\r\n"
    "event: message_delta\r\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":"
    "\"tool_use\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":9}}\r\n\r\n"
    "event: message_stop\r\ndata: {\"type\":\"message_stop\"}\r\n\r\n";

}  // namespace

TEST_CASE("chat stream: OpenAI deltas, tool calls, finish, usage and [DONE]", "[stream]") {
  for (const Feeding how : feedings(kOpenAiStream, 7)) {
    INFO("pieces of " << how.piece << ", cut at " << how.cut);
    BufferPool pool;
    Recorder rec;
    ChatStream stream(Protocol::OpenAI, &rec.callback, {});
    stream.begin(pool, "text/event-stream");
    // [DONE] completes the reply: the sink says so at once.
    REQUIRE(feed(stream, kOpenAiStream, how) == BodySink::Action::Finished);
    REQUIRE_FALSE(stream.on_end().has_value());
    stream.release();
    CHECK(rec.joined(StreamEvent::Type::Text) == "Hello \xC3\xA9\n");
    CHECK(rec.joined(StreamEvent::Type::Reasoning) == "Let me think.");
    CHECK(rec.joined(StreamEvent::Type::ToolCall) == "{\"city\":\"Paris\"}");
    CHECK(rec.count(StreamEvent::Type::Finish) == 1);
    CHECK(rec.count(StreamEvent::Type::Usage) == 1);
    REQUIRE(rec.events.back().type == StreamEvent::Type::Done);
    for (const Seen& s : rec.events) {
      if (s.type == StreamEvent::Type::ToolCall) {
        CHECK(s.tool_call_id == "call_1");
        CHECK(s.tool_name == "get_weather");
      }
      if (s.type == StreamEvent::Type::Usage) CHECK(s.usage.total_tokens == 18);
    }
    glmproxy::ChatResponse r = stream.take_response();
    CHECK(r.id == "c1");
    CHECK(r.model == "glm-4.7");
    CHECK(r.content == "Hello \xC3\xA9\n");
    CHECK(r.reasoning_content == "Let me think.");
    CHECK(r.finish_reason == "tool_calls");
    REQUIRE(r.tool_calls.size() == 1);
    CHECK(r.tool_calls[0].arguments_json == "{\"city\":\"Paris\"}");
    CHECK(r.usage.prompt_tokens == 11);
    CHECK(r.usage.completion_tokens == 7);
    CHECK(pool.stats().in_use() == 0);
  }
}

TEST_CASE("chat stream: Anthropic events, thinking, tool_use, unknown types ignored", "[stream]") {
  for (const Feeding how : feedings(kAnthropicStream, 13)) {
    INFO("pieces of " << how.piece << ", cut at " << how.cut);
    BufferPool pool;
    Recorder rec;
    ChatStream stream(Protocol::Anthropic, &rec.callback, {});
    stream.begin(pool, "text/event-stream; charset=utf-8");
    REQUIRE(feed(stream, kAnthropicStream, how) == BodySink::Action::Finished);
    REQUIRE_FALSE(stream.on_end().has_value());
    stream.release();
    CHECK(rec.joined(StreamEvent::Type::Text) == "Hi there");
    CHECK(rec.joined(StreamEvent::Type::Reasoning) == "Hmm.");
    CHECK(rec.joined(StreamEvent::Type::ToolCall) == "{\"q\":1}");
    CHECK(rec.events.back().type == StreamEvent::Type::Done);
    glmproxy::ChatResponse r = stream.take_response();
    CHECK(r.id == "msg_1");
    CHECK(r.finish_reason == "tool_use");
    CHECK(r.usage.prompt_tokens == 12);
    CHECK(r.usage.completion_tokens == 9);
    CHECK(r.usage.total_tokens == 21);
    REQUIRE(r.tool_calls.size() == 1);
    CHECK(r.tool_calls[0].id == "toolu_1");
    CHECK(r.tool_calls[0].name == "lookup");
    CHECK(r.tool_calls[0].arguments_json == "{\"q\":1}");
  }
}

TEST_CASE("chat stream: error events inside a 200 stream become typed errors", "[stream]") {
  BufferPool pool;
  Recorder rec;
  SECTION("Anthropic overloaded_error is retryable") {
    ChatStream stream(Protocol::Anthropic, &rec.callback, {});
    stream.begin(pool, "text/event-stream");
    const std::string body =
        "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\","
        "\"message\":\"Overloaded\"}}\n\n";
    REQUIRE(feed(stream, body, body.size()) == BodySink::Action::Fail);
    const glmproxy::Error e = stream.error();
    CHECK(e.upstream_code == "overloaded_error");
    CHECK(e.code == ErrorCode::UpstreamError);
    CHECK(e.retryable());
    CHECK_FALSE(stream.delivered());
  }
  SECTION("a Z.AI business error in an OpenAI stream") {
    ChatStream stream(Protocol::OpenAI, &rec.callback, {});
    stream.begin(pool, "text/event-stream");
    const std::string body =
        "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"a\"}}]}\n\n"
        "data: {\"error\":{\"code\":\"1113\",\"message\":\"Insufficient balance\"}}\n\n";
    REQUIRE(feed(stream, body, 5) == BodySink::Action::Fail);
    CHECK(stream.error().code == ErrorCode::QuotaExceeded);
    CHECK(stream.delivered());
  }
  SECTION("a data line that is not JSON") {
    ChatStream stream(Protocol::OpenAI, &rec.callback, {});
    stream.begin(pool, "text/event-stream");
    REQUIRE(feed(stream, "data: {\"choices\": [\n\n", 3) == BodySink::Action::Fail);
    CHECK(stream.error().code == ErrorCode::BadResponse);
    CHECK_THAT(stream.error().message, Catch::Contains("not valid JSON"));
  }
  CHECK(pool.stats().in_use() <= 3);
}

// The SSE peer cases (openai-node's and the WHATWG tests') that a hostile upstream plays too.
TEST_CASE("chat stream: the end marker finishes the reply at once, Done carries no text",
          "[stream][peer]") {
  for (Protocol protocol : {Protocol::OpenAI, Protocol::Anthropic}) {
    BufferPool pool;
    Recorder rec;
    ChatStream stream(protocol, &rec.callback, {});
    stream.begin(pool, "text/event-stream");
    const std::string& body = protocol == Protocol::OpenAI ? kOpenAiStream : kAnthropicStream;
    // Nothing follows the marker (the upstream holds the connection open): still Finished.
    REQUIRE(feed(stream, body, 13) == BodySink::Action::Finished);
    REQUIRE_FALSE(rec.events.empty());
    CHECK(rec.events.back().type == StreamEvent::Type::Done);
    CHECK(rec.events.back().text.empty());
    CHECK(rec.events.back().tool_call_id.empty());
    const glmproxy::ChatResponse reply = stream.take_response();
    CHECK_FALSE(reply.content.empty());
    stream.release();
  }
}

TEST_CASE("chat stream: event: error with a flat error object is typed", "[stream][peer]") {
  BufferPool pool;
  Recorder rec;
  ChatStream stream(Protocol::OpenAI, &rec.callback, {});
  stream.begin(pool, "text/event-stream");
  const std::string body =
      "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"a\"}}]}\n\n"
      "event: error\ndata: {\"message\":\"Rate limit reached\",\"code\":\"1302\","
      "\"type\":\"rate_limit_error\"}\n\n";
  REQUIRE(feed(stream, body, 7) == BodySink::Action::Fail);
  const glmproxy::Error e = stream.error();
  CHECK(e.code == ErrorCode::RateLimited);
  CHECK(e.upstream_code == "1302");
  CHECK_THAT(e.message, Catch::Contains("Rate limit reached"));
  stream.release();
}

TEST_CASE("chat stream: a malformed event's error does not quote the event", "[stream][peer]") {
  BufferPool pool;
  Recorder rec;
  ChatStream stream(Protocol::OpenAI, &rec.callback, {});
  stream.begin(pool, "text/event-stream");
  const std::string body = "data: {\"zqxwv\": sk-live-SECRET1234567890abcdef}\n\n";
  REQUIRE(feed(stream, body, body.size()) == BodySink::Action::Fail);
  const glmproxy::Error e = stream.error();
  CHECK(e.code == ErrorCode::BadResponse);
  CHECK_THAT(e.message, Catch::Contains("stream event 1"));
  CHECK(e.message.find("SECRET") == std::string::npos);
  CHECK(e.message.find("zqxwv") == std::string::npos);
  stream.release();
}

TEST_CASE("chat stream: a stream without its end marker was cut", "[stream]") {
  BufferPool pool;
  Recorder rec;
  ChatStream stream(Protocol::OpenAI, &rec.callback, {});
  stream.begin(pool, "text/event-stream");
  const std::string cut = kOpenAiStream.substr(0, kOpenAiStream.find("lo \\u00e9") + 3);
  REQUIRE(feed(stream, cut, 11) == BodySink::Action::Continue);
  auto end = stream.on_end();
  REQUIRE(end.has_value());
  CHECK(end->code == ErrorCode::BadResponse);
  CHECK_THAT(end->message, Catch::Contains("the stream was cut"));
  CHECK_THAT(end->message, Catch::Contains("in the middle of an event"));
  CHECK_THAT(end->message, Catch::Contains("[DONE]"));
  stream.release();
}

TEST_CASE("chat stream: a 2xx JSON answer to a stream request is read whole", "[stream]") {
  BufferPool pool;
  Recorder rec;
  ChatStream stream(Protocol::OpenAI, &rec.callback, {});
  stream.begin(pool, "application/json; charset=utf-8");
  const std::string body =
      R"({"id":"x","model":"m","choices":[{"index":0,"message":{"role":"assistant",)"
      R"("content":"whole"},"finish_reason":"stop"}],"usage":{"prompt_tokens":1,)"
      R"("completion_tokens":2,"total_tokens":3}})";
  REQUIRE(feed(stream, body, 10) == BodySink::Action::Continue);
  REQUIRE_FALSE(stream.on_end().has_value());
  stream.release();
  CHECK(rec.joined(StreamEvent::Type::Text) == "whole");
  CHECK(rec.events.back().type == StreamEvent::Type::Done);
  CHECK(stream.take_response().usage.total_tokens == 3);
}

TEST_CASE("chat stream: on_event returning false asks for cancellation", "[stream]") {
  BufferPool pool;
  Recorder rec;
  rec.stop_at_first_text = true;
  ChatStream stream(Protocol::OpenAI, &rec.callback, {});
  stream.begin(pool, "text/event-stream");
  CHECK(feed(stream, kOpenAiStream, kOpenAiStream.size()) == BodySink::Action::Cancel);
  CHECK(stream.cancelled());
  CHECK(rec.joined(StreamEvent::Type::Text) == "Hel");
  stream.release();
}

TEST_CASE("chat stream: no heap allocation per chunk in steady state", "[stream][alloc]") {
  // 10,100 content deltas, cut into pieces that do not respect event boundaries.
  std::string body;
  for (int i = 0; i < 10'100; ++i) {
    body +=
        "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"model\":"
        "\"glm-4.7\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"tok";
    body += std::to_string(i % 10);
    body += " \"},\"finish_reason\":null}]}\n\n";
  }
  body += "data: [DONE]\n\n";
  std::vector<std::string_view> pieces;
  const std::size_t sizes[] = {97, 160, 31, 211, 150};
  for (std::size_t pos = 0, i = 0; pos < body.size(); ++i) {
    const std::size_t n = std::min(sizes[i % 5], body.size() - pos);
    pieces.emplace_back(body.data() + pos, n);
    pos += n;
  }
  const std::size_t per_event = body.size() / 10'101;
  const std::size_t warm_pieces = 100 * per_event / 130 + 1;  // about the first 100 events

  BufferPool pool;
  std::size_t text_bytes = 0;
  StreamCallback count = [&text_bytes](const StreamEvent& e) {
    text_bytes += e.text.size();
    return true;
  };
  {
    // A whole earlier stream leaves its blocks in the pool, as a running client would.
    ChatStream first(Protocol::OpenAI, &count, {});
    first.begin(pool, "text/event-stream");
    for (std::string_view p : pieces) {
      const auto action = first.on_body(p);
      REQUIRE((action == BodySink::Action::Continue || action == BodySink::Action::Finished));
    }
    REQUIRE_FALSE(first.on_end().has_value());
    first.release();
  }
  ChatStream stream(Protocol::OpenAI, &count, {});
  stream.begin(pool, "text/event-stream");
  std::size_t i = 0;
  for (; i < warm_pieces; ++i) REQUIRE(stream.on_body(pieces[i]) == BodySink::Action::Continue);
  const std::uint64_t events_before = stream.events();

  counting_new::allocations = 0;
  counting_new::counting = true;
  bool all_continue = true;
  // The last piece holds [DONE], where the aggregate reply is built (once per stream, not per
  // chunk): it is fed after the count.
  for (; i + 1 < pieces.size(); ++i) {
    all_continue = all_continue && stream.on_body(pieces[i]) == BodySink::Action::Continue;
  }
  counting_new::counting = false;
  const std::size_t allocations = counting_new::allocations;
  REQUIRE(stream.on_body(pieces.back()) == BodySink::Action::Finished);

  REQUIRE(all_continue);
  const std::uint64_t measured_events = stream.events() - events_before;
  INFO("events measured: " << measured_events);
  CHECK(measured_events >= 10'000);
  CHECK(allocations == 0);
  REQUIRE_FALSE(stream.on_end().has_value());
  stream.release();
  CHECK(stream.take_response().content.size() == 10'100 * 5);
  CHECK(pool.stats().hits() > 0);
}

TEST_CASE("chat stream: the counting allocator does count", "[stream][alloc]") {
  // Guards the test above against a counter that never moves.
  counting_new::allocations = 0;
  counting_new::counting = true;
  auto* p = new std::string(100, 'x');
  counting_new::counting = false;
  delete p;
  CHECK(counting_new::allocations >= 2);
}
