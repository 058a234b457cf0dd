// The mock's tool-call turns, tool-result answers and media echo (docs/mock-upstream.md), by
// raw HTTP and through ProxyClient.

#include <simdjson.h>

#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "glmproxy/error.hpp"
#include "glmproxy/mock/mock_upstream.hpp"
#include "support/mock_client.hpp"
#include "support/raw_http.hpp"
#include "support/sse_scan.hpp"

using glmproxy::mock::MockOptions;
using glmproxy::test::RawClient;
using glmproxy::test::RawResponse;
using test_support::parse;
using test_support::sse_data;
using test_support::sse_event_names;

namespace {

// Two tools; the second's schema has one property of each kind the mock fills in.
const std::string kOpenAITools =
    R"("tools":[{"type":"function","function":{"name":"ping","parameters":{"type":"object"}}},)"
    R"({"type":"function","function":{"name":"get_weather","parameters":{"type":"object",)"
    R"("properties":{"city":{"type":"string"},"days":{"type":"integer"},)"
    R"("metric":{"type":"boolean"},"tags":{"type":"array"}}}}}])";
const std::string kAnthropicTools =
    R"("tools":[{"name":"ping","input_schema":{"type":"object"}},)"
    R"({"name":"get_weather","input_schema":{"type":"object",)"
    R"("properties":{"city":{"type":"string"},"days":{"type":"number"},)"
    R"("metric":{"type":"boolean"},"tags":{"type":"array"}}}}])";
const std::string kWeatherArgs = R"({"city":"mock","days":1,"metric":true,"tags":null})";
const std::string kAsk = R"("messages":[{"role":"user","content":"Weather?"}])";

std::string chat_url(const glmproxy::mock::MockUpstream& s) {
  return s.base_url() + "/api/paas/v4/chat/completions";
}
std::string messages_url(const glmproxy::mock::MockUpstream& s) {
  return s.base_url() + "/api/anthropic/v1/messages";
}

RawResponse post(const std::string& url, const std::string& members) {
  RawClient client;
  return client.post(url, R"({"model":"glm-4.7","max_tokens":2048,)" + members + "}");
}

// The text of a text answer, JSON (OpenAI or Anthropic shape).
std::string answer_text(const std::string& body) {
  simdjson::dom::parser parser;
  auto doc = parse(parser, body);
  std::string_view text;
  if (!doc["choices"].at(0)["message"]["content"].get(text)) return std::string(text);
  for (auto block : doc["content"].get_array()) {
    if (!block["text"].get(text)) return std::string(text);
  }
  return {};
}

// The text of a streamed text answer (OpenAI content deltas or Anthropic text_delta).
std::string streamed_text(const std::string& body) {
  std::string out;
  simdjson::dom::parser parser;
  for (const std::string& data : sse_data(body)) {
    if (data == "[DONE]") continue;
    auto event = parse(parser, data);
    std::string_view piece;
    if (!event["choices"].at(0)["delta"]["content"].get(piece)) out += piece;
    if (!event["delta"]["text"].get(piece)) out += piece;
  }
  return out;
}

}  // namespace

TEST_CASE("OpenAI tool call JSON: the named or first tool, arguments from its schema",
          "[mock][tools]") {
  MockOptions options;
  options.reasoning_text = "Which tool?";
  auto server = test_support::start_mock(options);
  RawResponse r =
      post(chat_url(*server),
           kOpenAITools +
               R"(,"tool_choice":{"type":"function","function":{"name":"get_weather"}},)" + kAsk);
  REQUIRE(r.status == 200);
  simdjson::dom::parser parser;
  auto doc = parse(parser, r.body);
  auto choice = doc["choices"].at(0);
  CHECK(std::string_view(choice["finish_reason"]) == "tool_calls");
  CHECK(choice["message"]["content"].is_null());
  CHECK(std::string_view(choice["message"]["reasoning_content"]) == "Which tool?");
  auto call = choice["message"]["tool_calls"].at(0);
  CHECK(std::string_view(call["id"]) == "call_mock_1");
  CHECK(std::string_view(call["type"]) == "function");
  CHECK(std::string_view(call["function"]["name"]) == "get_weather");
  CHECK(std::string_view(call["function"]["arguments"]) == kWeatherArgs);
  CHECK(int64_t(doc["usage"]["completion_tokens"]) > 0);

  // No tool_choice: the first tool, whose schema has no properties.
  r = post(chat_url(*server), kOpenAITools + "," + kAsk);
  doc = parse(parser, r.body);
  call = doc["choices"].at(0)["message"]["tool_calls"].at(0);
  CHECK(std::string_view(call["id"]) == "call_mock_2");
  CHECK(std::string_view(call["function"]["name"]) == "ping");
  CHECK(std::string_view(call["function"]["arguments"]) == "{}");

  // tool_choice none, either spelling: the normal text.
  for (const char* none : {R"("none")", R"({"type":"none"})"}) {
    r = post(chat_url(*server), kOpenAITools + R"(,"tool_choice":)" + none + "," + kAsk);
    CHECK(answer_text(r.body) == options.reply_text);
    CHECK(r.body.find("tool_calls") == std::string::npos);
  }
}

TEST_CASE("OpenAI tool call stream: id and name first, arguments in pieces", "[mock][tools]") {
  auto server = test_support::start_mock();
  RawResponse r =
      post(chat_url(*server),
           R"("stream":true,"stream_options":{"include_usage":true},)" + kOpenAITools +
               R"(,"tool_choice":{"type":"function","function":{"name":"get_weather"}},)" + kAsk);
  REQUIRE(r.status == 200);
  auto data = sse_data(r.body);
  REQUIRE(data.back() == "[DONE]");
  simdjson::dom::parser parser;
  std::string arguments, finish;
  int header_chunks = 0, argument_chunks = 0;
  bool usage = false;
  for (std::size_t i = 0; i + 1 < data.size(); ++i) {
    auto chunk = parse(parser, data[i]);
    auto choices = chunk["choices"].get_array().value();
    if (choices.size() == 0) {
      usage = int64_t(chunk["usage"]["total_tokens"]) > 0;
      continue;
    }
    std::string_view s;
    if (!choices.at(0)["finish_reason"].get(s)) finish = s;
    simdjson::dom::array calls;
    if (choices.at(0)["delta"]["tool_calls"].get(calls)) continue;
    auto call = calls.at(0);
    CHECK(int64_t(call["index"]) == 0);
    if (!call["id"].get(s)) {
      ++header_chunks;
      CHECK(s == "call_mock_1");
      CHECK(std::string_view(call["type"]) == "function");
      CHECK(std::string_view(call["function"]["name"]) == "get_weather");
      CHECK(std::string_view(call["function"]["arguments"]).empty());
    } else {
      ++argument_chunks;
      arguments += std::string_view(call["function"]["arguments"]);
    }
  }
  CHECK(header_chunks == 1);
  CHECK(argument_chunks >= 2);
  CHECK(arguments == kWeatherArgs);
  CHECK(finish == "tool_calls");
  CHECK(usage);
}

TEST_CASE("Anthropic tool call JSON: tool_use after the thinking block", "[mock][tools]") {
  auto server = test_support::start_mock();
  RawResponse r = post(messages_url(*server),
                       R"("thinking":{"type":"enabled","budget_tokens":1024},)" + kAnthropicTools +
                           R"(,"tool_choice":{"type":"tool","name":"get_weather"},)" + kAsk);
  REQUIRE(r.status == 200);
  simdjson::dom::parser parser;
  auto doc = parse(parser, r.body);
  CHECK(std::string_view(doc["stop_reason"]) == "tool_use");
  auto content = doc["content"].get_array().value();
  REQUIRE(content.size() == 2);
  CHECK(std::string_view(content.at(0)["type"]) == "thinking");
  auto use = content.at(1);
  CHECK(std::string_view(use["type"]) == "tool_use");
  CHECK(std::string_view(use["id"]) == "toolu_mock_1");
  CHECK(std::string_view(use["name"]) == "get_weather");
  CHECK(simdjson::minify(use["input"]) == kWeatherArgs);

  r = post(messages_url(*server), kAnthropicTools + "," + kAsk);
  doc = parse(parser, r.body);
  CHECK(std::string_view(doc["content"].at(0)["name"]) == "ping");
  CHECK(simdjson::minify(doc["content"].at(0)["input"]) == "{}");

  r = post(messages_url(*server), kAnthropicTools + R"(,"tool_choice":{"type":"none"},)" + kAsk);
  doc = parse(parser, r.body);
  CHECK(std::string_view(doc["stop_reason"]) == "end_turn");
  CHECK(answer_text(r.body) == MockOptions{}.reply_text);
}

TEST_CASE("Anthropic tool call stream: tool_use block, input_json_delta pieces", "[mock][tools]") {
  auto server = test_support::start_mock();
  RawResponse r = post(messages_url(*server),
                       R"("stream":true,)" + kAnthropicTools +
                           R"(,"tool_choice":{"type":"tool","name":"get_weather"},)" + kAsk);
  REQUIRE(r.status == 200);
  auto names = sse_event_names(r.body);
  auto data = sse_data(r.body);
  REQUIRE(names.size() == data.size());
  simdjson::dom::parser parser;
  std::string partial, stop_reason;
  int starts = 0, deltas = 0;
  for (std::size_t i = 0; i < data.size(); ++i) {
    auto event = parse(parser, data[i]);
    if (names[i] == "content_block_start") {
      ++starts;
      auto block = event["content_block"];
      CHECK(std::string_view(block["type"]) == "tool_use");
      CHECK(std::string_view(block["id"]) == "toolu_mock_1");
      CHECK(std::string_view(block["name"]) == "get_weather");
      CHECK(simdjson::minify(block["input"]) == "{}");
    } else if (names[i] == "content_block_delta") {
      ++deltas;
      CHECK(std::string_view(event["delta"]["type"]) == "input_json_delta");
      partial += std::string_view(event["delta"]["partial_json"]);
    } else if (names[i] == "message_delta") {
      stop_reason = std::string_view(event["delta"]["stop_reason"]);
    }
  }
  CHECK(starts == 1);
  CHECK(deltas >= 2);
  CHECK(partial == kWeatherArgs);
  CHECK(stop_reason == "tool_use");
  CHECK(names[names.size() - 3] == "content_block_stop");
}

TEST_CASE("after a tool result the answer repeats it, cut to 200 bytes", "[mock][tools]") {
  auto server = test_support::start_mock();
  const std::string openai_result =
      kOpenAITools +
      R"(,"messages":[{"role":"user","content":"Weather?"},{"role":"assistant","content":null,)"
      R"("tool_calls":[{"id":"call_mock_1","type":"function","function":{"name":"ping",)"
      R"("arguments":"{}"}}]},{"role":"tool","tool_call_id":"call_mock_1","content":"42"}])";
  RawResponse r = post(chat_url(*server), openai_result);
  CHECK(answer_text(r.body) == "Tool result: 42");
  CHECK(r.body.find(R"("finish_reason":"stop")") != std::string::npos);
  r = post(chat_url(*server), R"("stream":true,)" + openai_result);
  CHECK(streamed_text(r.body) == "Tool result: 42");
  CHECK(sse_data(r.body).size() > 4);  // in pieces, like any text

  const std::string anthropic_prefix =
      kAnthropicTools +
      R"(,"messages":[{"role":"user","content":"Weather?"},{"role":"assistant","content":[)"
      R"({"type":"tool_use","id":"toolu_mock_1","name":"ping","input":{}}]},)"
      R"({"role":"user","content":[{"type":"tool_result","tool_use_id":"toolu_mock_1","content":)";
  r = post(messages_url(*server), anthropic_prefix + R"("42"}]}])");
  CHECK(answer_text(r.body) == "Tool result: 42");
  CHECK(r.body.find(R"("stop_reason":"end_turn")") != std::string::npos);
  r = post(messages_url(*server),
           R"("stream":true,)" + anthropic_prefix +
               R"([{"type":"text","text":"4"},{"type":"text","text":"2"}]}]}])");
  CHECK(streamed_text(r.body) == "Tool result: 42");

  // 199 bytes and a two-byte character across byte 200: the character is left out whole.
  const std::string long_result = std::string(199, 'a') + "\xC3\xA9" + "tail";
  r = post(chat_url(*server),
           R"("messages":[{"role":"tool","tool_call_id":"x","content":")" + long_result + R"("}])");
  CHECK(answer_text(r.body) == "Tool result: " + std::string(199, 'a'));
  const std::string exact = std::string(198, 'a') + "\xC3\xA9" + "tail";
  r = post(chat_url(*server),
           R"("messages":[{"role":"tool","tool_call_id":"x","content":")" + exact + R"("}])");
  CHECK(answer_text(r.body) == "Tool result: " + exact.substr(0, 200));
}

TEST_CASE("Anthropic with thinking: a tool_use turn without its thinking block is 400",
          "[mock][tools]") {
  auto server = test_support::start_mock();
  const std::string turn =
      R"("thinking":{"type":"enabled","budget_tokens":1024},"messages":[)"
      R"({"role":"user","content":"Weather?"},{"role":"assistant","content":[)"
      R"({"type":"tool_use","id":"toolu_mock_1","name":"ping","input":{}}]},)"
      R"({"role":"user","content":[{"type":"tool_result","tool_use_id":"toolu_mock_1",)"
      R"("content":"42"}]}])";
  RawResponse r = post(messages_url(*server), turn);
  CHECK(r.status == 400);
  simdjson::dom::parser parser;
  auto doc = parse(parser, r.body);
  CHECK(std::string_view(doc["error"]["type"]) == "invalid_request_error");
  CHECK(std::string_view(doc["error"]["message"])
            .starts_with("messages.1.content.0.type: Expected `thinking` or `redacted_thinking`, "
                         "but found `tool_use`. When `thinking` is enabled, a final `assistant` "
                         "message must start with a thinking block"));
  // Without thinking the same turn is fine.
  std::string off = turn;
  const std::string enabled = R"("type":"enabled","budget_tokens":1024)";
  off.replace(off.find(enabled), enabled.size(), R"("type":"disabled")");
  CHECK(post(messages_url(*server), off).status == 200);
}

TEST_CASE("image, video and file parts are echoed after the reply text", "[mock][tools]") {
  MockOptions options;
  options.reply_text = "Seen.";
  auto server = test_support::start_mock(options);
  const std::string openai =
      R"("messages":[{"role":"system","content":[{"type":"image_url","image_url":{"url":)"
      R"("https://example.test/not-a-user.png"}}]},{"role":"user","content":[)"
      R"({"type":"text","text":"Look"},)"
      R"({"type":"image_url","image_url":{"url":"https://example.test/cat.png","detail":"low"}},)"
      R"({"type":"image_url","image_url":{"url":"data:image/png;base64,QUJDRA=="}},)"
      R"({"type":"video_url","video_url":{"url":"https://example.test/v.mp4"}},)"
      R"({"type":"file_url","file_url":{"url":"https://example.test/f.pdf"}}]}])";
  const std::string expected =
      "Seen. [image: https://example.test/cat.png] [image: data:image/png, 8 bytes]"
      " [video: https://example.test/v.mp4] [file: https://example.test/f.pdf]";
  CHECK(answer_text(post(chat_url(*server), openai).body) == expected);
  CHECK(streamed_text(post(chat_url(*server), R"("stream":true,)" + openai).body) == expected);

  const std::string anthropic =
      R"("messages":[{"role":"user","content":[)"
      R"({"type":"image","source":{"type":"url","url":"https://example.test/cat.png"}},)"
      R"({"type":"image","source":{"type":"base64","media_type":"image/jpeg","data":"QUJD"}},)"
      R"({"type":"document","source":{"type":"url","url":"https://example.test/f.pdf"}},)"
      R"({"type":"text","text":"Look"}]}])";
  const std::string expected_anthropic =
      "Seen. [image: https://example.test/cat.png] [image: base64 image/jpeg, 4 bytes]"
      " [file: https://example.test/f.pdf]";
  CHECK(answer_text(post(messages_url(*server), anthropic).body) == expected_anthropic);
  CHECK(streamed_text(post(messages_url(*server), R"("stream":true,)" + anthropic).body) ==
        expected_anthropic);
}

TEST_CASE("ProxyClient tool loop against the mock", "[mock][tools][client]") {
  auto server = test_support::start_mock();
  auto client = test_support::make_client(test_support::config_for(*server));
  glmproxy::ChatRequest request;
  request.messages = {{"user", "What is the answer?"}};
  request.tools.push_back(
      {"answer", "The answer", R"({"type":"object","properties":{"q":{"type":"string"}}})"});

  auto round_trip = [&](glmproxy::ChatRequest r) {
    auto first = client.complete(r);
    INFO((first ? "" : first.error().describe()));
    REQUIRE(first);
    REQUIRE(first->tool_calls.size() == 1);
    CHECK(first->tool_calls[0].name == "answer");
    CHECK(first->tool_calls[0].arguments_json == R"({"q":"mock"})");
    r.messages.push_back(glmproxy::Message::assistant(*first));
    r.messages.push_back(glmproxy::Message::tool_result(first->tool_calls[0].id, "42"));
    return std::pair{std::move(*first), std::move(r)};
  };

  SECTION("OpenAI") {
    auto [first, next] = round_trip(request);
    CHECK(first.finish_reason == "tool_calls");
    auto second = client.complete(next);
    INFO((second ? "" : second.error().describe()));
    REQUIRE(second);
    CHECK(second->content == "Tool result: 42");
  }
  SECTION("Anthropic with thinking") {
    request.protocol = glmproxy::Protocol::Anthropic;
    request.thinking_budget_tokens = 1024;
    request.max_tokens = 2048;
    auto [first, next] = round_trip(request);
    CHECK(first.finish_reason == "tool_use");
    REQUIRE(!first.thinking_blocks.empty());
    auto second = client.complete(next);
    INFO((second ? "" : second.error().describe()));
    REQUIRE(second);
    CHECK(second->content == "Tool result: 42");

    // The assistant turn without its thinking blocks is refused, typed.
    next.messages[1].thinking_blocks.clear();
    next.cache = glmproxy::CachePolicy::Bypass;
    auto refused = client.complete(next);
    REQUIRE(!refused);
    CHECK(refused.error().code == glmproxy::ErrorCode::InvalidArgument);
    CHECK(refused.error().message.find("Expected `thinking` or `redacted_thinking`") !=
          std::string::npos);
  }
}

TEST_CASE("ProxyClient image part is echoed by the mock", "[mock][tools][client]") {
  auto server = test_support::start_mock();
  auto client = test_support::make_client(test_support::config_for(*server));
  glmproxy::ChatRequest request;
  glmproxy::Message m{"user", "What is in this picture?"};
  m.parts.push_back(glmproxy::ContentPart::image_url("https://example.test/cat.png", "low"));
  request.messages = {m};
  auto reply = client.complete(request);
  INFO((reply ? "" : reply.error().describe()));
  REQUIRE(reply);
  CHECK(reply->content.ends_with(" [image: https://example.test/cat.png]"));
}
