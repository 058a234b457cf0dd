// The reply fields of issue 16 (typed tool calls, Anthropic thinking blocks, usage details,
// refusal, Z.AI request_id / created / web_search) against a hostile upstream: absurd indexes,
// wrong JSON types, huge strings, floods of blocks, invalid UTF-8. Each case ends in a bounded
// result or a typed BadResponse naming what was wrong; never a crash, an allocation sized by an
// attacker's number, or an exception. Streams are fed whole and a byte at a time.

#include <catch2/catch.hpp>

#include <cstdint>
#include <limits>
#include <string>
#include <string_view>
#include <vector>

#include "protocol/chat_stream.hpp"
#include "protocol/protocol.hpp"

using glmproxy::ChatResponse;
using glmproxy::ErrorCode;
using glmproxy::Protocol;
using glmproxy::Result;
using glmproxy::StreamEvent;
using glmproxy::ThinkingBlock;
using glmproxy::detail::BodySink;
using glmproxy::detail::BufferPool;
using glmproxy::detail::ChatStream;
using glmproxy::detail::SseLimits;
using glmproxy::detail::StreamCallback;
namespace detail = glmproxy::detail;

namespace {

constexpr std::int64_t kMax = std::numeric_limits<std::int64_t>::max();

Result<ChatResponse> parse(Protocol protocol, std::string_view text) {
  std::string body(text);
  return detail::parse_chat_response(protocol, body);
}

// A JSON reply that must be refused with BadResponse whose message contains `field`.
void refused_json(Protocol protocol, std::string_view body, std::string_view field) {
  INFO(body.substr(0, 300));
  auto r = parse(protocol, body);
  REQUIRE_FALSE(r);
  INFO(r.error().message);
  CHECK(r.error().code == ErrorCode::BadResponse);
  CHECK(r.error().message.find(field) != std::string::npos);
}

struct Run {
  bool ok = false;
  glmproxy::Error error;
  ChatResponse response;
  std::size_t events = 0;
  std::size_t tool_events = 0;
  std::size_t delivered_bytes = 0;  // text, tool_call_id and tool_name of every event
  std::string text, reasoning, refusal, arguments;
};

struct Limits {
  SseLimits sse{};
  std::size_t max_reply_bytes = 32u << 20;
};

// Feeds `body` to a fresh stream in pieces of `piece` bytes (0 = whole).
Run run_stream(Protocol protocol, std::string_view body, std::size_t piece, Limits limits = {},
               std::string_view content_type = "text/event-stream") {
  Run run;
  BufferPool pool;
  StreamCallback callback = [&run](const StreamEvent& e) {
    ++run.events;
    run.delivered_bytes += e.text.size() + e.tool_call_id.size() + e.tool_name.size();
    switch (e.type) {
      case StreamEvent::Type::Text:
        run.text += e.text;
        break;
      case StreamEvent::Type::Reasoning:
        run.reasoning += e.text;
        break;
      case StreamEvent::Type::Refusal:
        run.refusal += e.text;
        break;
      case StreamEvent::Type::ToolCall:
        ++run.tool_events;
        run.arguments += e.text;
        break;
      default:
        break;
    }
    return true;
  };
  ChatStream stream(protocol, &callback, limits.sse, limits.max_reply_bytes);
  stream.begin(pool, content_type);
  bool failed = false;
  const std::size_t step = piece == 0 ? std::max<std::size_t>(body.size(), 1) : piece;
  for (std::size_t i = 0; i < body.size() && !failed; i += step) {
    const auto action = stream.on_body(body.substr(i, step));
    if (action == BodySink::Action::Fail || action == BodySink::Action::Cancel) failed = true;
    if (action == BodySink::Action::Finished) break;
  }
  if (failed) {
    run.error = stream.error();
  } else if (auto e = stream.on_end()) {
    run.error = *e;
  } else {
    run.ok = true;
    run.response = stream.take_response();
  }
  stream.release();
  return run;
}

// `check` on the stream fed whole and a byte at a time.
template <class Check>
void both_ways(Protocol protocol, std::string_view body, Check check, Limits limits = {}) {
  {
    INFO("whole");
    check(run_stream(protocol, body, 0, limits));
  }
  {
    INFO("one byte at a time");
    check(run_stream(protocol, body, 1, limits));
  }
}

// A stream that must fail with BadResponse whose message contains `field`, both ways.
void refused_stream(Protocol protocol, std::string_view body, std::string_view field,
                    Limits limits = {}) {
  INFO(body.substr(0, 300));
  both_ways(
      protocol, body,
      [field](const Run& run) {
        REQUIRE_FALSE(run.ok);
        INFO(run.error.message);
        CHECK(run.error.code == ErrorCode::BadResponse);
        CHECK(run.error.message.find(field) != std::string::npos);
      },
      limits);
}

std::string sse(std::string_view data) { return "data: " + std::string(data) + "\n\n"; }

std::string anthropic_event(std::string_view type, std::string_view data) {
  return "event: " + std::string(type) + "\ndata: " + std::string(data) + "\n\n";
}

// An OpenAI chunk carrying `tool_calls` (the array's text) in choice 0's delta.
std::string tool_chunk(std::string_view calls) {
  return sse(R"({"id":"c","choices":[{"index":0,"delta":{"tool_calls":)" + std::string(calls) +
             "}}]}");
}

const std::string kOpenAiEnd =
    sse(R"({"choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]})") +
    "data: [DONE]\n\n";

const std::string kAnthropicStart = anthropic_event(
    "message_start", R"({"type":"message_start","message":{"id":"m","model":"glm"}})");
const std::string kAnthropicEnd =
    anthropic_event("message_delta",
                    R"({"type":"message_delta","delta":{"stop_reason":"end_turn"}})") +
    anthropic_event("message_stop", R"({"type":"message_stop"})");

std::string block_start(std::string_view index, std::string_view block) {
  return anthropic_event("content_block_start", R"({"type":"content_block_start","index":)" +
                                                    std::string(index) + R"(,"content_block":)" +
                                                    std::string(block) + "}");
}
std::string block_delta(std::string_view index, std::string_view delta) {
  return anthropic_event("content_block_delta", R"({"type":"content_block_delta","index":)" +
                                                    std::string(index) + R"(,"delta":)" +
                                                    std::string(delta) + "}");
}

// An OpenAI JSON reply whose choices[0].message has `message_members` (text after "role").
std::string openai_json(std::string_view message_members, std::string_view top = "") {
  return R"({"id":"x","model":"glm",)" + std::string(top) +
         R"("choices":[{"index":0,"finish_reason":"stop","message":{"role":"assistant")" +
         std::string(message_members) + "}}]}";
}

std::string anthropic_json(std::string_view content, std::string_view usage = "") {
  return R"({"id":"m","type":"message","model":"glm","stop_reason":"end_turn","content":[)" +
         std::string(content) + "]" + std::string(usage) + "}";
}

}  // namespace

// --- OpenAI tool_calls ---------------------------------------------------------------------

TEST_CASE("hostile fields: a tool_calls index that is huge, negative or not an integer",
          "[protocol][hostile]") {
  // Each would size the aggregate by the attacker's number, or land on call 0 unnoticed.
  for (std::string_view index :
       {"1099511627776", "-1", "1025", "1.5", "\"1\"", "18446744073709551615", "{}", "true"}) {
    INFO("index " << index);
    refused_stream(Protocol::OpenAI,
                   tool_chunk(R"([{"index":0,"id":"a","function":{"name":"f"}},{"index":)" +
                              std::string(index) + R"(,"function":{"arguments":"{}"}}])") +
                       kOpenAiEnd,
                   "tool_calls index");
  }
  // The largest allowed index costs its slots (counted against the cap), nothing more.
  both_ways(Protocol::OpenAI,
            tool_chunk(R"([{"index":1024,"id":"a","function":{"name":"f","arguments":"{}"}}])") +
                kOpenAiEnd,
            [](const Run& run) {
              REQUIRE(run.ok);
              REQUIRE(run.response.tool_calls.size() == 1025);
              CHECK(run.response.tool_calls[1024].name == "f");
            });
  // Absent or null: the first call (servers that stream one call may omit it).
  both_ways(Protocol::OpenAI,
            tool_chunk(R"([{"id":"a","function":{"name":"f","arguments":"{\"x\""}}])") +
                tool_chunk(R"([{"index":null,"function":{"arguments":":1}"}}])") + kOpenAiEnd,
            [](const Run& run) {
              REQUIRE(run.ok);
              REQUIRE(run.response.tool_calls.size() == 1);
              CHECK(run.response.tool_calls[0].arguments_json == R"({"x":1})");
            });
  // A JSON reply has no index: the array's order is the calls' order, whatever "index" says.
  auto r = parse(Protocol::OpenAI,
                 openai_json(R"(,"tool_calls":[{"index":1099511627776,"id":"a","type":"function",)"
                             R"("function":{"name":"f","arguments":"{}"}}])"));
  REQUIRE(r);
  REQUIRE(r->tool_calls.size() == 1);
  CHECK(r->tool_calls[0].name == "f");
}

TEST_CASE("hostile fields: 100000 distinct tool_calls indexes", "[protocol][hostile]") {
  std::string body;
  for (int i = 0; i < 100000; ++i) {
    body += tool_chunk(R"([{"index":)" + std::to_string(i) + R"(,"id":"c)" + std::to_string(i) +
                       R"(","function":{"name":"f","arguments":"{}"}}])");
  }
  body += kOpenAiEnd;
  both_ways(Protocol::OpenAI, body, [](const Run& run) {
    REQUIRE_FALSE(run.ok);
    INFO(run.error.message);
    CHECK(run.error.code == ErrorCode::BadResponse);
    CHECK(run.error.message.find("tool_calls index 1025") != std::string::npos);
    CHECK(run.tool_events == 1025);
  });
  // In one chunk (2000 calls: 100000 would pass the SSE line limit first): the same.
  const auto call_array = [](int n) {
    std::string calls = "[";
    for (int i = 0; i < n; ++i) {
      if (i != 0) calls += ',';
      calls += R"({"index":)" + std::to_string(i) + R"(,"function":{"name":"f"}})";
    }
    return calls + ']';
  };
  refused_stream(Protocol::OpenAI, tool_chunk(call_array(2000)) + kOpenAiEnd,
                 "tool_calls index 1025");
  const std::string calls = call_array(100000);
  // A JSON reply with 100000 calls: held, each one as small as its text (the body's cap,
  // GLMPROXY_MAX_RESPONSE_BYTES, bounds it at the transport).
  const std::string json = openai_json(R"(,"tool_calls":)" + calls);
  auto r = parse(Protocol::OpenAI, json);
  REQUIRE(r);
  CHECK(r->tool_calls.size() == 100000);
}

TEST_CASE("hostile fields: a 10 MB tool-call id or name", "[protocol][hostile]") {
  const std::string huge(10u << 20, 'n');
  // Longer than one SSE line may be (GLMPROXY_SSE_MAX_LINE_BYTES, 1 MiB).
  refused_stream(
      Protocol::OpenAI,
      tool_chunk(R"([{"index":0,"id":")" + huge + R"(","function":{"name":"f"}}])") + kOpenAiEnd,
      "GLMPROXY_SSE_MAX_LINE_BYTES");
  refused_stream(Protocol::Anthropic,
                 kAnthropicStart +
                     block_start("0", R"({"type":"tool_use","id":"t","name":")" + huge + "\"}") +
                     kAnthropicEnd,
                 "GLMPROXY_SSE_MAX_LINE_BYTES");
  // A JSON reply holds it (its body is bounded by GLMPROXY_MAX_RESPONSE_BYTES).
  auto r = parse(Protocol::OpenAI,
                 openai_json(R"(,"tool_calls":[{"id":")" + huge +
                             R"(","type":"function","function":{"name":"f","arguments":"{}"}}])"));
  REQUIRE(r);
  CHECK(r->tool_calls.at(0).id.size() == huge.size());
}

TEST_CASE("hostile fields: every tool-call event's copy of a large name counts against the cap",
          "[protocol][hostile]") {
  // One 300 KB name, then 200 empty argument pieces: each ToolCall event carries the name, and a
  // slow consumer's queue keeps every copy. Without counting them, 60 MB would be delivered
  // (and could wait in memory) under a 1 MB cap.
  Limits limits;
  limits.max_reply_bytes = 1u << 20;
  const std::string name(300'000, 'n');
  for (Protocol protocol : {Protocol::OpenAI, Protocol::Anthropic}) {
    INFO((protocol == Protocol::OpenAI ? "openai" : "anthropic"));
    std::string body;
    if (protocol == Protocol::OpenAI) {
      body = tool_chunk(R"([{"index":0,"id":"a","function":{"name":")" + name + "\"}}]");
      for (int i = 0; i < 200; ++i) body += tool_chunk(R"([{"index":0,"function":{}}])");
      body += kOpenAiEnd;
    } else {
      body = kAnthropicStart +
             block_start("0", R"({"type":"tool_use","id":"t","name":")" + name + "\"}");
      for (int i = 0; i < 200; ++i) {
        body += block_delta("0", R"({"type":"input_json_delta","partial_json":""})");
      }
      body += kAnthropicEnd;
    }
    both_ways(
        protocol, body,
        [&](const Run& run) {
          REQUIRE_FALSE(run.ok);
          INFO(run.error.message);
          CHECK(run.error.code == ErrorCode::BadResponse);
          CHECK(run.error.message.find("GLMPROXY_MAX_RESPONSE_BYTES") != std::string::npos);
          CHECK(run.delivered_bytes <= limits.max_reply_bytes);
        },
        limits);
  }
}

TEST_CASE("hostile fields: tool-call arguments past the cap", "[protocol][hostile]") {
  Limits limits;
  limits.max_reply_bytes = 64u << 10;
  const std::string piece(1000, 'a');
  std::string openai = tool_chunk(R"([{"index":0,"id":"a","function":{"name":"f"}}])");
  std::string anthropic =
      kAnthropicStart + block_start("0", R"({"type":"tool_use","id":"t","name":"f"})");
  for (int i = 0; i < 100; ++i) {
    openai += tool_chunk(R"([{"index":0,"function":{"arguments":")" + piece + "\"}}]");
    anthropic += block_delta("0", R"({"type":"input_json_delta","partial_json":")" + piece + "\"}");
  }
  refused_stream(Protocol::OpenAI, openai + kOpenAiEnd, "GLMPROXY_MAX_RESPONSE_BYTES", limits);
  refused_stream(Protocol::Anthropic, anthropic + kAnthropicEnd, "GLMPROXY_MAX_RESPONSE_BYTES",
                 limits);
  // A stream request answered with a JSON body: that body is bounded the same way.
  const std::string json =
      openai_json(R"(,"tool_calls":[{"id":"a","type":"function","function":{"name":"f",)"
                  R"("arguments":")" +
                  std::string(100'000, 'a') + "\"}}]");
  const Run run = run_stream(Protocol::OpenAI, json, 0, limits, "application/json");
  REQUIRE_FALSE(run.ok);
  CHECK(run.error.code == ErrorCode::BadResponse);
}

TEST_CASE("hostile fields: a tool call with no id or name", "[protocol][hostile]") {
  // JSON: a call needs its function name (the caller could not run it); the id may be absent.
  refused_json(Protocol::OpenAI,
               openai_json(R"(,"tool_calls":[{"id":"a","type":"function","function":{}}])"),
               "choices[0].message.tool_calls[0].function.name");
  refused_json(Protocol::OpenAI, openai_json(R"(,"tool_calls":[{"id":"a","function":{"name":7}}])"),
               "choices[0].message.tool_calls[0].function.name");
  refused_json(Protocol::OpenAI, openai_json(R"(,"tool_calls":[{"id":5,"function":{"name":"f"}}])"),
               "choices[0].message.tool_calls[0].id");
  auto r = parse(Protocol::OpenAI, openai_json(R"(,"tool_calls":[{"function":{"name":"f"}}])"));
  REQUIRE(r);
  CHECK(r->tool_calls.at(0).id.empty());
  refused_json(Protocol::Anthropic, anthropic_json(R"({"type":"tool_use","id":"t"})"),
               "content[0].name");
  // A stream's pieces come as they come: a call without them is kept, empty where nothing came
  // (bounded: one slot).
  both_ways(Protocol::OpenAI,
            tool_chunk(R"([{"index":0,"function":{"arguments":"{}"}}])") + kOpenAiEnd,
            [](const Run& run) {
              REQUIRE(run.ok);
              REQUIRE(run.response.tool_calls.size() == 1);
              CHECK(run.response.tool_calls[0].id.empty());
              CHECK(run.response.tool_calls[0].name.empty());
              CHECK(run.response.tool_calls[0].arguments_json == "{}");
            });
  both_ways(Protocol::Anthropic,
            kAnthropicStart + block_start("0", R"({"type":"tool_use","id":5,"name":[]})") +
                block_delta("0", R"({"type":"input_json_delta","partial_json":"{}"})") +
                kAnthropicEnd,
            [](const Run& run) {
              REQUIRE(run.ok);
              REQUIRE(run.response.tool_calls.size() == 1);
              CHECK(run.response.tool_calls[0].name.empty());
              CHECK(run.response.tool_calls[0].arguments_json == "{}");
            });
}

// --- Anthropic content blocks ----------------------------------------------------------------

TEST_CASE("hostile fields: an Anthropic content block index that is huge or negative",
          "[protocol][hostile]") {
  // The index is a label, not a position: nothing is sized by it.
  for (std::string_view index : {"1099511627776", "-5", "9223372036854775807"}) {
    INFO("index " << index);
    both_ways(Protocol::Anthropic,
              kAnthropicStart + block_start("0", R"({"type":"text","text":""})") +
                  block_start(index, R"({"type":"tool_use","id":"t","name":"f"})") +
                  block_delta(index, R"({"type":"input_json_delta","partial_json":"{\"a\":1}"})") +
                  block_start("1", R"({"type":"thinking","thinking":""})") +
                  block_delta(index, R"({"type":"text_delta","text":"hi"})") + kAnthropicEnd,
              [](const Run& run) {
                REQUIRE(run.ok);
                REQUIRE(run.response.tool_calls.size() == 1);
                CHECK(run.response.tool_calls[0].arguments_json == R"({"a":1})");
                CHECK(run.text == "hi");
              });
  }
}

TEST_CASE("hostile fields: an Anthropic content block index that is not an integer",
          "[protocol][hostile]") {
  // Taken as 0, such an index would send tool input or a signature to another block.
  for (std::string_view index : {"18446744073709551615", "1.5", "\"0\"", "[]"}) {
    INFO("index " << index);
    refused_stream(Protocol::Anthropic,
                   kAnthropicStart +
                       block_start(index, R"({"type":"tool_use","id":"t",)"
                                          R"("name":"f"})") +
                       kAnthropicEnd,
                   "index");
    refused_stream(
        Protocol::Anthropic,
        kAnthropicStart + block_start("0", R"({"type":"thinking","thinking":"","signature":""})") +
            block_delta(index, R"({"type":"signature_delta","signature":"s"})") + kAnthropicEnd,
        "index");
  }
}

TEST_CASE("hostile fields: signature_delta for a block that is not thinking",
          "[protocol][hostile]") {
  for (std::string_view block :
       {R"({"type":"text","text":""})", R"({"type":"tool_use","id":"t","name":"f"})",
        R"({"type":"redacted_thinking","data":"d"})"}) {
    INFO(block);
    refused_stream(Protocol::Anthropic,
                   kAnthropicStart + block_start("0", block) +
                       block_delta("0", R"({"type":"signature_delta","signature":"s"})") +
                       kAnthropicEnd,
                   "signature_delta for content block 0, which is no thinking block");
  }
  // A block that was never opened.
  refused_stream(Protocol::Anthropic,
                 kAnthropicStart +
                     block_delta("7", R"({"type":"signature_delta","signature":"s"})") +
                     kAnthropicEnd,
                 "signature_delta for content block 7");
  // A signature that is no string adds nothing.
  both_ways(Protocol::Anthropic,
            kAnthropicStart + block_start("0", R"({"type":"thinking","thinking":"t"})") +
                block_delta("0", R"({"type":"signature_delta","signature":{"a":1}})") +
                block_delta("0", R"({"type":"signature_delta","signature":"sig"})") + kAnthropicEnd,
            [](const Run& run) {
              REQUIRE(run.ok);
              REQUIRE(run.response.thinking_blocks.size() == 1);
              CHECK(run.response.thinking_blocks[0].signature == "sig");
            });
}

TEST_CASE("hostile fields: a redacted_thinking block with no data, or data not a string",
          "[protocol][hostile]") {
  // Such a block cannot be sent back (Message::thinking_blocks refuses empty data): the reply is
  // refused where the fault is, not the caller's next request.
  for (std::string_view block :
       {R"({"type":"redacted_thinking"})", R"({"type":"redacted_thinking","data":null})",
        R"({"type":"redacted_thinking","data":""})", R"({"type":"redacted_thinking","data":7})",
        R"({"type":"redacted_thinking","data":["d"]})"}) {
    INFO(block);
    refused_json(Protocol::Anthropic, anthropic_json(block), "content[0].data");
    refused_stream(Protocol::Anthropic, kAnthropicStart + block_start("0", block) + kAnthropicEnd,
                   "redacted_thinking block 0 has no data");
  }
  both_ways(Protocol::Anthropic,
            kAnthropicStart + block_start("3", R"({"type":"redacted_thinking","data":"d"})") +
                kAnthropicEnd,
            [](const Run& run) {
              REQUIRE(run.ok);
              REQUIRE(run.response.thinking_blocks.size() == 1);
              CHECK(run.response.thinking_blocks[0].type == ThinkingBlock::Type::Redacted);
              CHECK(run.response.thinking_blocks[0].data == "d");
            });
}

TEST_CASE("hostile fields: 100000 thinking blocks", "[protocol][hostile]") {
  std::string body = kAnthropicStart;
  std::string content;
  for (int i = 0; i < 100000; ++i) {
    body += block_start(std::to_string(i), R"({"type":"thinking","thinking":"t","signature":"s"})");
    if (i != 0) content += ',';
    content += R"({"type":"thinking","thinking":"t","signature":"s"})";
  }
  body += kAnthropicEnd;
  both_ways(Protocol::Anthropic, body, [](const Run& run) {
    REQUIRE_FALSE(run.ok);
    INFO(run.error.message);
    CHECK(run.error.code == ErrorCode::BadResponse);
    CHECK(run.error.message.find("more than 4096 content blocks") != std::string::npos);
    CHECK(run.reasoning.size() == 4096);
  });
  // A JSON reply: held, as small as its text (the body's cap bounds it at the transport).
  auto r = parse(Protocol::Anthropic, anthropic_json(content));
  REQUIRE(r);
  CHECK(r->thinking_blocks.size() == 100000);
  CHECK(r->reasoning_content.size() == 100000);
}

// --- usage -----------------------------------------------------------------------------------

TEST_CASE("hostile fields: usage counts negative, above 2^63, floats and strings",
          "[protocol][hostile]") {
  // JSON: negative -> 0, above INT64_MAX -> INT64_MAX; a float or a string is BadResponse
  // naming the count.
  const std::string openai_usage =
      R"("usage":{"prompt_tokens":18446744073709551615,"completion_tokens":-4,)"
      R"("prompt_tokens_details":{"cached_tokens":18446744073709551615},)"
      R"("completion_tokens_details":{"reasoning_tokens":-1}},)";
  auto r = parse(Protocol::OpenAI, openai_json(R"(,"content":"a")", openai_usage));
  REQUIRE(r);
  CHECK(r->usage.prompt_tokens == kMax);
  CHECK(r->usage.completion_tokens == 0);
  CHECK(r->usage.total_tokens == kMax);
  CHECK(r->usage.cached_prompt_tokens == kMax);
  CHECK(r->usage.reasoning_tokens == 0);
  for (std::string_view bad : {"1.5", "\"12\"", "1e3", "[]"}) {
    INFO("count " << bad);
    refused_json(Protocol::OpenAI,
                 openai_json("", R"("usage":{"prompt_tokens":)" + std::string(bad) + "},"),
                 "usage.prompt_tokens");
    refused_json(Protocol::OpenAI,
                 openai_json("", R"("usage":{"prompt_tokens_details":{"cached_tokens":)" +
                                     std::string(bad) + "}},"),
                 "usage.prompt_tokens_details.cached_tokens");
    refused_json(Protocol::OpenAI,
                 openai_json("", R"("usage":{"completion_tokens_details":{"reasoning_tokens":)" +
                                     std::string(bad) + "}},"),
                 "usage.completion_tokens_details.reasoning_tokens");
    refused_json(Protocol::Anthropic,
                 anthropic_json(R"({"type":"text","text":"a"})",
                                R"(,"usage":{"cache_read_input_tokens":)" + std::string(bad) + "}"),
                 "usage.cache_read_input_tokens");
    refused_json(
        Protocol::Anthropic,
        anthropic_json(R"({"type":"text","text":"a"})",
                       R"(,"usage":{"cache_creation_input_tokens":)" + std::string(bad) + "}"),
        "usage.cache_creation_input_tokens");
  }
  // Past 2^64 simdjson cannot read the number at all: the body is not valid JSON.
  refused_json(Protocol::OpenAI,
               openai_json("", R"("usage":{"prompt_tokens":99999999999999999999},)"),
               "not valid JSON");
  refused_json(Protocol::OpenAI, openai_json("", R"("usage":{"prompt_tokens_details":5},)"),
               "usage.prompt_tokens_details");
  auto a =
      parse(Protocol::Anthropic, anthropic_json(R"({"type":"text","text":"a"})",
                                                R"(,"usage":{"input_tokens":-7,"output_tokens":1,)"
                                                R"("cache_read_input_tokens":18446744073709551615,)"
                                                R"("cache_creation_input_tokens":-3})"));
  REQUIRE(a);
  CHECK(a->usage.cache_read_input_tokens == kMax);
  CHECK(a->usage.cache_creation_input_tokens == 0);
  CHECK(a->usage.prompt_tokens == kMax);
  CHECK(a->usage.total_tokens == kMax);

  // Streams: a count that is no integer is absent; the rest as above.
  both_ways(Protocol::OpenAI,
            sse(R"({"choices":[{"index":0,"delta":{"content":"a"},"finish_reason":"stop"}],)"
                R"("usage":{"prompt_tokens":"9","completion_tokens":1.5e300,)"
                R"("total_tokens":-1,"prompt_tokens_details":{"cached_tokens":2.5},)"
                R"("completion_tokens_details":{"reasoning_tokens":18446744073709551615}}})") +
                "data: [DONE]\n\n",
            [](const Run& run) {
              REQUIRE(run.ok);
              CHECK(run.response.usage.prompt_tokens == 0);
              CHECK(run.response.usage.completion_tokens == 0);
              CHECK(run.response.usage.total_tokens == 0);
              CHECK(run.response.usage.cached_prompt_tokens == 0);
              CHECK(run.response.usage.reasoning_tokens == 0);
            });
  refused_stream(Protocol::OpenAI,
                 sse(R"({"usage":{"prompt_tokens":18446744073709551616}})") + kOpenAiEnd,
                 "not valid JSON");
  both_ways(Protocol::Anthropic,
            anthropic_event("message_start",
                            R"({"type":"message_start","message":{"usage":{"input_tokens":-1,)"
                            R"("cache_read_input_tokens":1.5,"cache_creation_input_tokens":)"
                            R"(18446744073709551615}}})") +
                kAnthropicEnd,
            [](const Run& run) {
              REQUIRE(run.ok);
              CHECK(run.response.usage.cache_creation_input_tokens == kMax);
              CHECK(run.response.usage.cache_read_input_tokens == 0);
              CHECK(run.response.usage.prompt_tokens == kMax);
            });
}

// --- Z.AI extras and refusal -----------------------------------------------------------------

TEST_CASE("hostile fields: web_search not an array, or huge", "[protocol][hostile]") {
  for (std::string_view bad : {R"({"a":1})", "\"x\"", "7", "true"}) {
    INFO("web_search " << bad);
    refused_json(Protocol::OpenAI, openai_json("", R"("web_search":)" + std::string(bad) + ","),
                 "web_search");
    // A stream ignores it (a chunk's extras are optional).
    both_ways(Protocol::OpenAI,
              sse(R"({"web_search":)" + std::string(bad) +
                  R"(,"choices":[{"index":0,"delta":{"content":"a"}}]})") +
                  kOpenAiEnd,
              [](const Run& run) {
                REQUIRE(run.ok);
                CHECK(run.response.web_search_json.empty());
                CHECK(run.text == "a");
              });
  }
  // Huge: counted against the cap, chunk after chunk.
  Limits limits;
  limits.max_reply_bytes = 64u << 10;
  std::string items = "[";
  for (int i = 0; i < 1000; ++i) {
    if (i != 0) items += ',';
    items += R"({"title":"t)" + std::to_string(i) + R"(","link":"https://example.com/"})";
  }
  items += ']';
  std::string body;
  for (int i = 0; i < 5; ++i) body += sse(R"({"web_search":)" + items + "}");
  refused_stream(Protocol::OpenAI, body + kOpenAiEnd, "GLMPROXY_MAX_RESPONSE_BYTES", limits);
}

TEST_CASE("hostile fields: refusal, request_id and created of the wrong JSON type",
          "[protocol][hostile]") {
  for (std::string_view bad : {"7", "true", "[\"x\"]", "{\"a\":\"b\"}"}) {
    INFO("value " << bad);
    const bool number = bad == "7";
    refused_json(Protocol::OpenAI, openai_json(R"(,"refusal":)" + std::string(bad)),
                 "choices[0].message.refusal");
    refused_json(Protocol::OpenAI, openai_json("", R"("request_id":)" + std::string(bad) + ","),
                 "request_id");
    // created is informational: what is no integer is left at 0.
    auto r = parse(Protocol::OpenAI, openai_json("", R"("created":)" + std::string(bad) + ","));
    REQUIRE(r);
    CHECK(r->created == (number ? 7 : 0));
    // A stream ignores a member of the wrong type.
    both_ways(Protocol::OpenAI,
              sse(R"({"request_id":)" + std::string(bad) + R"(,"created":)" + std::string(bad) +
                  R"(,"choices":[{"index":0,"delta":{"refusal":)" + std::string(bad) +
                  R"(,"content":"a"}}]})") +
                  kOpenAiEnd,
              [number](const Run& run) {
                REQUIRE(run.ok);
                CHECK(run.response.request_id.empty());
                CHECK(run.response.refusal.empty());
                CHECK(run.response.created == (number ? 7 : 0));
                CHECK(run.text == "a");
              });
  }
  for (std::string_view created : {"-5", "1.5e300", "18446744073709551615", "-1e30"}) {
    INFO("created " << created);
    auto r = parse(Protocol::OpenAI, openai_json("", R"("created":)" + std::string(created) + ","));
    REQUIRE(r);
    CHECK(r->created == 0);
    both_ways(Protocol::OpenAI, sse(R"({"created":)" + std::string(created) + "}") + kOpenAiEnd,
              [](const Run& run) {
                REQUIRE(run.ok);
                CHECK(run.response.created == 0);
              });
  }
}

TEST_CASE("hostile fields: invalid UTF-8 in the new string fields", "[protocol][hostile]") {
  // Raw invalid bytes (a lone continuation byte, an overlong '/', a truncated sequence, a
  // surrogate encoded directly) and escapes that name half a surrogate pair.
  const std::vector<std::string> bad = {"a\x80z",         "a\xc0\xafz", "a\xe2\x82",
                                        "a\xed\xa0\x80z", "a\\ud800z",  "a\\udc00z"};
  for (const std::string& s : bad) {
    INFO("string " << s);
    const std::vector<std::string> json = {
        openai_json(R"(,"refusal":")" + s + "\""),
        openai_json("", R"("request_id":")" + s + "\","),
        openai_json(R"(,"tool_calls":[{"id":")" + s + R"(","function":{"name":"f"}}])"),
        openai_json(R"(,"tool_calls":[{"id":"a","function":{"name":")" + s + "\"}}]"),
        openai_json(R"(,"tool_calls":[{"id":"a","function":{"name":"f","arguments":")" + s +
                    "\"}}]"),
        openai_json("", R"("web_search":[{"title":")" + s + "\"}],"),
        anthropic_json(R"({"type":"thinking","thinking":"t","signature":")" + s + "\"}"),
        anthropic_json(R"({"type":"redacted_thinking","data":")" + s + "\"}"),
        anthropic_json(R"({"type":"tool_use","id":"t","name":")" + s + "\"}"),
    };
    for (const std::string& body : json) {
      const Protocol protocol =
          body.find("\"choices\"") != std::string::npos ? Protocol::OpenAI : Protocol::Anthropic;
      refused_json(protocol, body, "not valid JSON");
    }
    const std::vector<std::pair<Protocol, std::string>> streams = {
        {Protocol::OpenAI,
         sse(R"({"choices":[{"index":0,"delta":{"refusal":")" + s + "\"}}]}") + kOpenAiEnd},
        {Protocol::OpenAI, sse(R"({"request_id":")" + s + "\"}") + kOpenAiEnd},
        {Protocol::OpenAI,
         tool_chunk(R"([{"index":0,"id":"a","function":{"name":")" + s + "\"}}]") + kOpenAiEnd},
        {Protocol::Anthropic,
         kAnthropicStart + block_start("0", R"({"type":"thinking","thinking":""})") +
             block_delta("0", R"({"type":"signature_delta","signature":")" + s + "\"}") +
             kAnthropicEnd},
        {Protocol::Anthropic,
         kAnthropicStart + block_start("0", R"({"type":"redacted_thinking","data":")" + s + "\"}") +
             kAnthropicEnd},
        {Protocol::Anthropic,
         kAnthropicStart + block_start("0", R"({"type":"tool_use","id":"t","name":"f"})") +
             block_delta("0", R"({"type":"input_json_delta","partial_json":")" + s + "\"}") +
             kAnthropicEnd},
    };
    for (const auto& [protocol, body] : streams) refused_stream(protocol, body, "not valid JSON");
  }
}
