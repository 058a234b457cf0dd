// Message::reasoning_content on the OpenAI protocol (GLM): the exact body sent back in a tool
// loop with thinking, and InvalidArgument naming the field for bad input.
// Shape: Z.AI thinking mode (https://docs.z.ai/guides/capabilities/thinking-mode, "preserved
// thinking"): the assistant message carries the reasoning_content it was returned with, next to
// its content and tool_calls.

#include <catch2/catch.hpp>

#include <string>
#include <string_view>
#include <vector>

#include "protocol/protocol.hpp"
#include "support/request_body.hpp"

using glmproxy::ChatRequest;
using glmproxy::ChatResponse;
using glmproxy::Message;
using glmproxy::Protocol;
using glmproxy::ToolCall;

namespace {

ChatRequest openai_request(std::vector<Message> messages) {
  ChatRequest request;
  request.protocol = Protocol::OpenAI;
  request.messages = std::move(messages);
  return request;
}

std::string body_of(const ChatRequest& request) {
  return test_support::body_of(request, "glm-4.7");
}

}  // namespace

TEST_CASE("OpenAI body: an assistant turn sends its reasoning_content back",
          "[protocol][reasoning]") {
  ChatResponse reply;
  reply.content = "";
  reply.reasoning_content = "The user wants the weather; call get_weather.";
  reply.tool_calls = {ToolCall{"call_1", "get_weather", R"({"city":"Paris"})"}};
  const std::vector<Message> messages = {Message{"user", "Weather in Paris?"},
                                         Message::assistant(reply),
                                         Message::tool_result("call_1", "18C, sunny")};
  CHECK(body_of(openai_request(messages)) ==
        R"({"model":"glm-4.7","messages":[{"role":"user","content":"Weather in Paris?"},)"
        R"({"role":"assistant","content":null,)"
        R"("reasoning_content":"The user wants the weather; call get_weather.",)"
        R"("tool_calls":[{"id":"call_1","type":"function","function":{"name":"get_weather",)"
        R"("arguments":"{\"city\":\"Paris\"}"}}]},)"
        R"({"role":"tool","tool_call_id":"call_1","content":"18C, sunny"}]})");

  // With text and without tool calls: after content, escaped like any string.
  Message text_turn{"assistant", "It is sunny."};
  text_turn.reasoning_content = "Say \"sunny\".\n";
  CHECK(
      body_of(openai_request({Message{"user", "Weather?"}, text_turn})) ==
      R"({"model":"glm-4.7","messages":[{"role":"user","content":"Weather?"},)"
      R"({"role":"assistant","content":"It is sunny.","reasoning_content":"Say \"sunny\".\n"}]})");

  // Empty: not sent.
  CHECK(body_of(openai_request({Message{"user", "Hi"}, Message{"assistant", "Hello"}})) ==
        R"({"model":"glm-4.7","messages":[{"role":"user","content":"Hi"},)"
        R"({"role":"assistant","content":"Hello"}]})");
}

TEST_CASE("OpenAI body: bad reasoning_content is InvalidArgument naming the field",
          "[protocol][reasoning]") {
  Message assistant{"assistant", "ok"};
  assistant.reasoning_content = "bad \xFF byte";
  CHECK_THAT(test_support::refused(openai_request({Message{"user", "Hi"}, assistant}), "glm-4.7"),
             Catch::Contains("messages[1].reasoning_content"));

  for (const char* role : {"system", "user", "tool"}) {
    INFO(role);
    Message other{role, "text"};
    other.tool_call_id = "call_1";
    other.reasoning_content = "thoughts";
    CHECK_THAT(test_support::refused(openai_request({Message{"user", "Hi"}, other}), "glm-4.7"),
               Catch::Contains(std::string("messages[1].reasoning_content is only for assistant "
                                           "messages, got role \"") +
                               role + "\""));
  }
}
