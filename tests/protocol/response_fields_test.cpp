// The reply fields of issue 16 in both parsers, JSON and stream: usage details (cached,
// reasoning, Anthropic cache read / creation), refusal, Z.AI request_id / created / web_search.
// Stream fixtures are fed whole, a byte at a time, and cut in two at every byte.

#include <catch2/catch.hpp>

#include <cstdint>
#include <limits>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

#include "protocol/chat_stream.hpp"
#include "protocol/protocol.hpp"

using glmproxy::ChatResponse;
using glmproxy::ErrorCode;
using glmproxy::Protocol;
using glmproxy::Result;
using glmproxy::StreamEvent;
using glmproxy::Usage;
using glmproxy::detail::BodySink;
using glmproxy::detail::BufferPool;
using glmproxy::detail::ChatStream;
using glmproxy::detail::StreamCallback;
namespace detail = glmproxy::detail;

namespace {

constexpr std::int64_t kMax = std::numeric_limits<std::int64_t>::max();

Result<ChatResponse> parse(Protocol protocol, std::string_view text) {
  std::string body(text);
  return detail::parse_chat_response(protocol, body);
}

struct Seen {
  StreamEvent::Type type;
  std::string text;
  Usage usage;
};

struct Run {
  std::vector<Seen> events;
  ChatResponse response;
  bool ok = false;

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
  const Seen* last(StreamEvent::Type type) const {
    const Seen* found = nullptr;
    for (const Seen& s : events) {
      if (s.type == type) found = &s;
    }
    return found;
  }
};

// Feeds `parts` in order to a fresh stream; ok when it finished without error.
Run run_stream(Protocol protocol, const std::vector<std::string_view>& parts,
               std::string_view content_type = "text/event-stream") {
  Run run;
  BufferPool pool;
  StreamCallback callback = [&run](const StreamEvent& e) {
    run.events.push_back({e.type, e.text, e.usage});
    return true;
  };
  ChatStream stream(protocol, &callback, {});
  stream.begin(pool, content_type);
  bool failed = false;
  for (std::string_view part : parts) {
    const auto action = stream.on_body(part);
    if (action == BodySink::Action::Fail || action == BodySink::Action::Cancel) failed = true;
    if (action != BodySink::Action::Continue) break;
  }
  run.ok = !failed && !stream.on_end().has_value();
  stream.release();
  if (run.ok) run.response = stream.take_response();
  return run;
}

// `check` on the stream fed whole, a byte at a time, and cut in two at every byte.
template <class Check>
void every_split(Protocol protocol, std::string_view body, Check check) {
  {
    INFO("whole");
    check(run_stream(protocol, {body}));
  }
  {
    INFO("one byte at a time");
    std::vector<std::string_view> bytes;
    for (std::size_t i = 0; i < body.size(); ++i) bytes.push_back(body.substr(i, 1));
    check(run_stream(protocol, bytes));
  }
  for (std::size_t cut = 1; cut < body.size(); ++cut) {
    INFO("cut at byte " << cut);
    check(run_stream(protocol, {body.substr(0, cut), body.substr(cut)}));
  }
}

// OpenAI chat completion object (platform.openai.com/docs/api-reference/chat/object): usage
// with prompt_tokens_details / completion_tokens_details, message.refusal null, created.
constexpr std::string_view kOpenAiBody = R"({
  "id": "chatcmpl-B9MHDbslfkBeAs8l4bebGdFOJ6PeG",
  "object": "chat.completion",
  "created": 1741570283,
  "model": "gpt-4o-2024-08-06",
  "choices": [{
    "index": 0,
    "message": {"role": "assistant", "content": "The image shows a wooden boardwalk.",
                "refusal": null, "annotations": []},
    "logprobs": null,
    "finish_reason": "stop"
  }],
  "usage": {
    "prompt_tokens": 1117, "completion_tokens": 46, "total_tokens": 1163,
    "prompt_tokens_details": {"cached_tokens": 1024, "audio_tokens": 0},
    "completion_tokens_details": {"reasoning_tokens": 12, "audio_tokens": 0,
                                  "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0}
  },
  "service_tier": "default",
  "system_fingerprint": "fp_fc9f1d7035"
})";

// OpenAI refusal (platform.openai.com/docs/guides/structured-outputs, "Refusals"): content null,
// message.refusal holds the explanation, finish_reason "stop".
constexpr std::string_view kOpenAiRefusal = R"({
  "id": "chatcmpl-9nYAG9LPNonX8DAyrkwYfemr3C8HC",
  "object": "chat.completion",
  "created": 1721596428,
  "model": "gpt-4o-2024-08-06",
  "choices": [{
    "index": 0,
    "message": {"role": "assistant", "content": null,
                "refusal": "I'm sorry, I cannot assist with that request."},
    "logprobs": null,
    "finish_reason": "stop"
  }],
  "usage": {"prompt_tokens": 81, "completion_tokens": 11, "total_tokens": 92}
})";

// Z.AI chat completion response (docs.z.ai/api-reference/llm/chat-completion): request_id,
// created, usage.prompt_tokens_details.cached_tokens, and the web_search array (icon, title,
// link, media, publish_date, content, refer) of a web_search tool call.
constexpr std::string_view kZaiBody = R"({
  "id": "20250801120000a1b2c3d4e5f6",
  "request_id": "req-4f1b2a",
  "created": 1754020800,
  "model": "glm-4.7",
  "choices": [{"index": 0, "finish_reason": "stop",
               "message": {"role": "assistant", "content": "Sunny, 31 \u00b0C.",
                           "reasoning_content": "Search, then answer."}}],
  "usage": {"prompt_tokens": 300, "completion_tokens": 20, "total_tokens": 320,
            "prompt_tokens_details": {"cached_tokens": 256}},
  "web_search": [
    {"icon": "https://example.com/i.png", "title": "Beijing weather", "link": "https://example.com/w",
     "media": "Example Weather", "publish_date": "2025-08-01", "content": "Sunny \u00b0", "refer": "ref_1"}
  ]
})";

// Anthropic Messages response (docs.anthropic.com/en/api/messages, "usage"; prompt caching
// guide): input_tokens counts only the uncached part, next to cache_creation_input_tokens and
// cache_read_input_tokens.
constexpr std::string_view kAnthropicBody = R"({
  "id": "msg_013Zva2CMHLNnXjNJJKqJ2EF",
  "type": "message",
  "role": "assistant",
  "model": "claude-sonnet-4-20250514",
  "content": [{"type": "text", "text": "Hi!"}],
  "stop_reason": "end_turn",
  "stop_sequence": null,
  "usage": {"input_tokens": 21, "cache_creation_input_tokens": 188086,
            "cache_read_input_tokens": 1000, "output_tokens": 393,
            "cache_creation": {"ephemeral_5m_input_tokens": 188086, "ephemeral_1h_input_tokens": 0},
            "service_tier": "standard"}
})";

// A Z.AI stream with a web_search tool call (docs.z.ai/api-reference/llm/chat-completion,
// streaming): the first chunk carries request_id, created and web_search; usage last. The
// refusal deltas are OpenAI's (platform.openai.com/docs/api-reference/chat-streaming,
// choices[].delta.refusal). A second web_search chunk checks that the arrays are joined.
const std::string kOpenAiStream =
    "data: {\"id\":\"c9\",\"request_id\":\"req-77\",\"created\":1754020800,\"model\":\"glm-4.7\","
    "\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\",\"refusal\":"
    "null},\"finish_reason\":null}],\"web_search\":[{\"title\":\"A\",\"link\":\"https://a.example"
    "\",\"refer\":\"ref_1\"}]}\n\n"
    "data: {\"id\":\"c9\",\"request_id\":\"req-other\",\"created\":5,\"choices\":[{\"index\":0,"
    "\"delta\":{\"content\":\"Hi\"},\"finish_reason\":null}],\"web_search\":[{\"title\":\"B\"}]}"
    "\n\n"
    "data: {\"id\":\"c9\",\"choices\":[{\"index\":0,\"delta\":{\"refusal\":\"I can't \"},"
    "\"finish_reason\":null}]}\n\n"
    "data: {\"id\":\"c9\",\"choices\":[{\"index\":0,\"delta\":{\"refusal\":\"help \\u00e9.\"},"
    "\"finish_reason\":null}]}\n\n"
    "data: {\"id\":\"c9\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n"
    "data: {\"id\":\"c9\",\"choices\":[],\"usage\":{\"prompt_tokens\":40,\"completion_tokens\":10,"
    "\"total_tokens\":50,\"prompt_tokens_details\":{\"cached_tokens\":32},"
    "\"completion_tokens_details\":{\"reasoning_tokens\":4}}}\n\n"
    "data: [DONE]\n\n";

// Anthropic streaming (docs.anthropic.com/en/docs/build-with-claude/streaming): message_start
// carries input and cache counts with output_tokens 1; message_delta's usage is cumulative and
// may repeat (or update) the input-side counts.
const std::string kAnthropicStream =
    "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_9\","
    "\"model\":\"claude-sonnet-4-20250514\",\"usage\":{\"input_tokens\":25,"
    "\"cache_creation_input_tokens\":100,\"cache_read_input_tokens\":2000,\"output_tokens\":1}}}"
    "\n\n"
    "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,"
    "\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n"
    "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,"
    "\"delta\":{\"type\":\"text_delta\",\"text\":\"Hello\"}}\n\n"
    "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n"
    "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":"
    "\"end_turn\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":15,"
    "\"cache_read_input_tokens\":2048}}\n\n"
    "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n";

}  // namespace

// --- JSON replies ------------------------------------------------------------------------------

TEST_CASE("parse OpenAI: cached and reasoning tokens, created, no refusal", "[protocol][fields]") {
  auto r = parse(Protocol::OpenAI, kOpenAiBody);
  REQUIRE(r.has_value());
  CHECK(r->usage.prompt_tokens == 1117);
  CHECK(r->usage.completion_tokens == 46);
  CHECK(r->usage.total_tokens == 1163);
  CHECK(r->usage.cached_prompt_tokens == 1024);
  CHECK(r->usage.reasoning_tokens == 12);
  CHECK(r->usage.cache_read_input_tokens == 0);
  CHECK(r->usage.cache_creation_input_tokens == 0);
  CHECK(r->created == 1741570283);
  CHECK(r->refusal.empty());
  CHECK(r->request_id.empty());
  CHECK(r->web_search_json.empty());
}

TEST_CASE("parse OpenAI: a refusal is reported, not empty content", "[protocol][fields]") {
  auto r = parse(Protocol::OpenAI, kOpenAiRefusal);
  REQUIRE(r.has_value());
  CHECK(r->refusal == "I'm sorry, I cannot assist with that request.");
  CHECK(r->content.empty());
  CHECK(r->finish_reason == "stop");
}

TEST_CASE("parse Z.AI: request_id, created, cached tokens and web_search", "[protocol][fields]") {
  auto r = parse(Protocol::OpenAI, kZaiBody);
  REQUIRE(r.has_value());
  CHECK(r->id == "20250801120000a1b2c3d4e5f6");
  CHECK(r->request_id == "req-4f1b2a");
  CHECK(r->created == 1754020800);
  CHECK(r->usage.cached_prompt_tokens == 256);
  CHECK(r->usage.reasoning_tokens == 0);
  CHECK(r->web_search_json ==
        R"([{"icon":"https://example.com/i.png","title":"Beijing weather",)"
        R"("link":"https://example.com/w","media":"Example Weather","publish_date":"2025-08-01",)"
        "\"content\":\"Sunny \xC2\xB0\",\"refer\":\"ref_1\"}]");
}

TEST_CASE("parse Anthropic: cache read and creation tokens count as prompt tokens",
          "[protocol][fields]") {
  auto r = parse(Protocol::Anthropic, kAnthropicBody);
  REQUIRE(r.has_value());
  CHECK(r->usage.cache_creation_input_tokens == 188086);
  CHECK(r->usage.cache_read_input_tokens == 1000);
  CHECK(r->usage.cached_prompt_tokens == 1000);
  CHECK(r->usage.prompt_tokens == 21 + 188086 + 1000);
  CHECK(r->usage.completion_tokens == 393);
  CHECK(r->usage.total_tokens == 21 + 188086 + 1000 + 393);
  CHECK(r->usage.reasoning_tokens == 0);
  CHECK(r->refusal.empty());
}

TEST_CASE("parse: usage details are made safe like prompt_tokens", "[protocol][fields]") {
  const std::string max = std::to_string(kMax);
  // Negative -> 0; a part larger than its whole is cut to it; above INT64_MAX saturates.
  auto r = parse(Protocol::OpenAI,
                 R"({"choices":[{"message":{}}],"usage":{"prompt_tokens":10,"completion_tokens":5,)"
                 R"("prompt_tokens_details":{"cached_tokens":-3},)"
                 R"("completion_tokens_details":{"reasoning_tokens":9}}})");
  REQUIRE(r.has_value());
  CHECK(r->usage.cached_prompt_tokens == 0);
  CHECK(r->usage.reasoning_tokens == 5);
  r = parse(Protocol::OpenAI,
            R"({"choices":[{"message":{}}],"usage":{"prompt_tokens":18446744073709551615,)"
            R"("prompt_tokens_details":{"cached_tokens":18446744073709551615},)"
            R"("completion_tokens_details":null}})");
  REQUIRE(r.has_value());
  CHECK(r->usage.prompt_tokens == kMax);
  CHECK(r->usage.cached_prompt_tokens == kMax);
  // Anthropic sums saturate instead of overflowing.
  r = parse(Protocol::Anthropic, R"({"content":[],"usage":{"input_tokens":)" + max +
                                     R"(,"cache_read_input_tokens":)" + max +
                                     R"(,"cache_creation_input_tokens":-4,"output_tokens":1}})");
  REQUIRE(r.has_value());
  CHECK(r->usage.prompt_tokens == kMax);
  CHECK(r->usage.total_tokens == kMax);
  CHECK(r->usage.cache_creation_input_tokens == 0);
  CHECK(r->usage.cached_prompt_tokens == kMax);
}

TEST_CASE("parse: mistyped new members are BadResponse naming them", "[protocol][fields]") {
  const std::vector<std::tuple<Protocol, std::string, std::string>> cases = {
      {Protocol::OpenAI,
       R"({"choices":[{"message":{}}],"usage":{"prompt_tokens_details":{"cached_tokens":"1"}}})",
       "usage.prompt_tokens_details.cached_tokens"},
      {Protocol::OpenAI, R"({"choices":[{"message":{}}],"usage":{"prompt_tokens_details":5}})",
       "usage.prompt_tokens_details"},
      {Protocol::OpenAI,
       R"({"choices":[{"message":{}}],"usage":{"completion_tokens_details":)"
       R"({"reasoning_tokens":1.5}}})",
       "usage.completion_tokens_details.reasoning_tokens"},
      {Protocol::OpenAI, R"({"choices":[{"message":{"refusal":7}}]})",
       "choices[0].message.refusal"},
      {Protocol::OpenAI, R"({"request_id":1,"choices":[{"message":{}}]})", "request_id"},
      {Protocol::OpenAI, R"({"web_search":{},"choices":[{"message":{}}]})", "web_search"},
      {Protocol::Anthropic, R"({"content":[],"usage":{"cache_read_input_tokens":"9"}})",
       "usage.cache_read_input_tokens"},
      {Protocol::Anthropic, R"({"content":[],"usage":{"cache_creation_input_tokens":true}})",
       "usage.cache_creation_input_tokens"},
  };
  for (const auto& [protocol, body, what] : cases) {
    INFO("body " << body);
    auto r = parse(protocol, body);
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error().code == ErrorCode::BadResponse);
    CHECK_THAT(r.error().message, Catch::Contains(what));
  }
  // `created` is informational: one that is no integer is left at 0, the reply still parses.
  auto r = parse(Protocol::OpenAI, R"({"created":1.5e9,"choices":[{"message":{}}]})");
  REQUIRE(r.has_value());
  CHECK(r->created == 0);
}

// --- streams -----------------------------------------------------------------------------------

TEST_CASE("stream OpenAI: refusal, web_search, request_id, created and usage details",
          "[protocol][fields][stream]") {
  every_split(Protocol::OpenAI, kOpenAiStream, [](const Run& run) {
    REQUIRE(run.ok);
    CHECK(run.joined(StreamEvent::Type::Refusal) == "I can't help \xC3\xA9.");
    CHECK(run.count(StreamEvent::Type::Refusal) == 2);
    CHECK(run.joined(StreamEvent::Type::Text) == "Hi");
    REQUIRE(run.count(StreamEvent::Type::WebSearch) == 2);
    CHECK(run.events.front().type == StreamEvent::Type::WebSearch);
    CHECK(run.events.front().text ==
          R"([{"title":"A","link":"https://a.example","refer":"ref_1"}])");
    const Seen* usage = run.last(StreamEvent::Type::Usage);
    REQUIRE(usage != nullptr);
    CHECK(usage->usage.prompt_tokens == 40);
    CHECK(usage->usage.total_tokens == 50);
    CHECK(usage->usage.cached_prompt_tokens == 32);
    CHECK(usage->usage.reasoning_tokens == 4);
    const ChatResponse& r = run.response;
    CHECK(r.refusal == "I can't help \xC3\xA9.");
    CHECK(r.content == "Hi");
    CHECK(r.finish_reason == "stop");
    CHECK(r.request_id == "req-77");  // the first one seen
    CHECK(r.created == 1754020800);
    CHECK(r.web_search_json ==
          R"([{"title":"A","link":"https://a.example","refer":"ref_1"},{"title":"B"}])");
    CHECK(r.usage.cached_prompt_tokens == 32);
    CHECK(r.usage.reasoning_tokens == 4);
  });
}

TEST_CASE("stream Anthropic: cache counts of message_start, updated by message_delta",
          "[protocol][fields][stream]") {
  every_split(Protocol::Anthropic, kAnthropicStream, [](const Run& run) {
    REQUIRE(run.ok);
    CHECK(run.joined(StreamEvent::Type::Text) == "Hello");
    REQUIRE(run.count(StreamEvent::Type::Usage) == 1);
    const Usage& u = run.last(StreamEvent::Type::Usage)->usage;
    CHECK(u.cache_creation_input_tokens == 100);
    CHECK(u.cache_read_input_tokens == 2048);  // message_delta's count replaces message_start's
    CHECK(u.cached_prompt_tokens == 2048);
    CHECK(u.prompt_tokens == 25 + 100 + 2048);
    CHECK(u.completion_tokens == 15);
    CHECK(u.total_tokens == 25 + 100 + 2048 + 15);
    CHECK(run.response.usage.prompt_tokens == u.prompt_tokens);
    CHECK(run.response.usage.cache_creation_input_tokens == 100);
  });
}

TEST_CASE("stream: hostile usage details are made safe", "[protocol][fields][stream]") {
  const std::string body =
      "data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}],\"usage\":{"
      "\"prompt_tokens\":7,\"completion_tokens\":3,\"prompt_tokens_details\":{\"cached_tokens\":"
      "99},\"completion_tokens_details\":{\"reasoning_tokens\":-2}}}\n\ndata: [DONE]\n\n";
  Run run = run_stream(Protocol::OpenAI, {body});
  REQUIRE(run.ok);
  CHECK(run.response.usage.cached_prompt_tokens == 7);
  CHECK(run.response.usage.reasoning_tokens == 0);
  const std::string anthropic =
      "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"usage\":{"
      "\"input_tokens\":9223372036854775807,\"cache_read_input_tokens\":18446744073709551615}}}"
      "\n\nevent: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":"
      "\"end_turn\"},\"usage\":{\"output_tokens\":5,\"cache_creation_input_tokens\":\"x\"}}\n\n"
      "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n";
  run = run_stream(Protocol::Anthropic, {anthropic});
  REQUIRE(run.ok);
  CHECK(run.response.usage.prompt_tokens == kMax);
  CHECK(run.response.usage.total_tokens == kMax);
  CHECK(run.response.usage.cache_creation_input_tokens == 0);
}

TEST_CASE("stream: a JSON answer gives the refusal and web_search events too",
          "[protocol][fields][stream]") {
  std::string body(kZaiBody);
  Run run = run_stream(Protocol::OpenAI, {body}, "application/json");
  REQUIRE(run.ok);
  REQUIRE(run.count(StreamEvent::Type::WebSearch) == 1);
  CHECK(run.events.front().type == StreamEvent::Type::WebSearch);
  CHECK(run.response.web_search_json == parse(Protocol::OpenAI, kZaiBody)->web_search_json);
  CHECK(run.response.request_id == "req-4f1b2a");
  CHECK(run.response.created == 1754020800);
  CHECK(run.last(StreamEvent::Type::Usage)->usage.cached_prompt_tokens == 256);

  run = run_stream(Protocol::OpenAI, {kOpenAiRefusal}, "application/json");
  REQUIRE(run.ok);
  CHECK(run.joined(StreamEvent::Type::Refusal) == "I'm sorry, I cannot assist with that request.");
  CHECK(run.response.refusal == "I'm sorry, I cannot assist with that request.");
}

TEST_CASE("to_string of the new stream event types", "[protocol][fields]") {
  CHECK(glmproxy::to_string(StreamEvent::Type::Refusal) == "refusal");
  CHECK(glmproxy::to_string(StreamEvent::Type::WebSearch) == "web_search");
}

// --- Anthropic thinking blocks (issue 16 item 4) ---------------------------------------------

// Anthropic extended thinking docs (docs.anthropic.com/en/docs/build-with-claude/
// extended-thinking): a reply's content starts with "thinking" blocks carrying a "signature",
// and "redacted_thinking" blocks carrying encrypted "data".
constexpr std::string_view kAnthropicThinkingBody = R"({
  "id": "msg_01ThinK", "type": "message", "role": "assistant", "model": "claude-sonnet-4",
  "content": [
    {"type": "thinking", "thinking": "Let me analyze this step by step...",
     "signature": "WaUjzkypQ2mUEVM36O2TxuC06KN8xyfbJwyem2dw3URve/op91XWHOEBLLqIOMfFG/UvLEczmEsUjavL"},
    {"type": "redacted_thinking", "data": "EmwKAhgBEgy3va3pzix/LafPsn4aDFIT2Xlxh0L5L8rLVyIwxtE3rAFBa8cr"},
    {"type": "text", "text": "Based on my analysis..."}
  ],
  "stop_reason": "end_turn",
  "usage": {"input_tokens": 2095, "output_tokens": 503}
})";

TEST_CASE("parse Anthropic: thinking blocks keep their signature, redacted blocks their data",
          "[protocol][fields][thinking]") {
  auto r = parse(Protocol::Anthropic, kAnthropicThinkingBody);
  REQUIRE(r.has_value());
  CHECK(r->content == "Based on my analysis...");
  CHECK(r->reasoning_content == "Let me analyze this step by step...");
  REQUIRE(r->thinking_blocks.size() == 2);
  CHECK(r->thinking_blocks[0].type == glmproxy::ThinkingBlock::Type::Thinking);
  CHECK(r->thinking_blocks[0].thinking == "Let me analyze this step by step...");
  CHECK(r->thinking_blocks[0].signature ==
        "WaUjzkypQ2mUEVM36O2TxuC06KN8xyfbJwyem2dw3URve/op91XWHOEBLLqIOMfFG/UvLEczmEsUjavL");
  CHECK(r->thinking_blocks[1].type == glmproxy::ThinkingBlock::Type::Redacted);
  CHECK(r->thinking_blocks[1].data ==
        "EmwKAhgBEgy3va3pzix/LafPsn4aDFIT2Xlxh0L5L8rLVyIwxtE3rAFBa8cr");

  // A mistyped signature is BadResponse naming it.
  auto bad = parse(Protocol::Anthropic,
                   R"({"content":[{"type":"thinking","thinking":"x","signature":7}]})");
  REQUIRE_FALSE(bad.has_value());
  CHECK(bad.error().code == glmproxy::ErrorCode::BadResponse);
  CHECK(bad.error().message.find("signature") != std::string::npos);
}

// The same docs' streaming example: thinking_delta pieces, then one signature_delta, then the
// text block; a redacted_thinking block arrives whole in its content_block_start.
constexpr std::string_view kAnthropicThinkingStream =
    "event: message_start\n"
    R"(data: {"type":"message_start","message":{"id":"msg_01","type":"message","role":"assistant","content":[],"model":"claude-sonnet-4","usage":{"input_tokens":10,"output_tokens":1}}})"
    "\n\n"
    "event: content_block_start\n"
    R"(data: {"type":"content_block_start","index":0,"content_block":{"type":"thinking","thinking":""}})"
    "\n\n"
    "event: content_block_delta\n"
    R"(data: {"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":"First break down "}})"
    "\n\n"
    "event: content_block_delta\n"
    R"(data: {"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":"27 * 453"}})"
    "\n\n"
    "event: content_block_delta\n"
    R"(data: {"type":"content_block_delta","index":0,"delta":{"type":"signature_delta","signature":"EqQBCgIYAhIM1gbcDa9GJwZA2b3h"}})"
    "\n\n"
    "event: content_block_stop\n"
    R"(data: {"type":"content_block_stop","index":0})"
    "\n\n"
    "event: content_block_start\n"
    R"(data: {"type":"content_block_start","index":1,"content_block":{"type":"redacted_thinking","data":"EmwKAhgBEgy3va3p"}})"
    "\n\n"
    "event: content_block_stop\n"
    R"(data: {"type":"content_block_stop","index":1})"
    "\n\n"
    "event: content_block_start\n"
    R"(data: {"type":"content_block_start","index":2,"content_block":{"type":"text","text":""}})"
    "\n\n"
    "event: content_block_delta\n"
    R"(data: {"type":"content_block_delta","index":2,"delta":{"type":"text_delta","text":"12231"}})"
    "\n\n"
    "event: message_delta\n"
    R"(data: {"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":40}})"
    "\n\n"
    "event: message_stop\n"
    R"(data: {"type":"message_stop"})"
    "\n\n";

TEST_CASE("stream Anthropic: thinking, signature and redacted_thinking at every split",
          "[protocol][fields][stream][thinking]") {
  every_split(Protocol::Anthropic, kAnthropicThinkingStream, [](const Run& run) {
    REQUIRE(run.ok);
    CHECK(run.joined(StreamEvent::Type::Reasoning) == "First break down 27 * 453");
    CHECK(run.joined(StreamEvent::Type::Signature) == "EqQBCgIYAhIM1gbcDa9GJwZA2b3h");
    CHECK(run.count(StreamEvent::Type::RedactedThinking) == 1);
    CHECK(run.joined(StreamEvent::Type::RedactedThinking) == "EmwKAhgBEgy3va3p");
    CHECK(run.joined(StreamEvent::Type::Text) == "12231");
    REQUIRE(run.response.thinking_blocks.size() == 2);
    CHECK(run.response.thinking_blocks[0].thinking == "First break down 27 * 453");
    CHECK(run.response.thinking_blocks[0].signature == "EqQBCgIYAhIM1gbcDa9GJwZA2b3h");
    CHECK(run.response.thinking_blocks[1].type == glmproxy::ThinkingBlock::Type::Redacted);
    CHECK(run.response.thinking_blocks[1].data == "EmwKAhgBEgy3va3p");
  });
}
