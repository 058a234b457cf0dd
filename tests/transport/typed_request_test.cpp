// The typed request fields of issue 16 through the whole client, against the mock upstream: the
// body that reaches the wire, InvalidArgument before any upstream call, and cache entries that
// tell requests apart by their image and tools. The exact bodies are pinned in
// tests/protocol/request_fields_test.cpp.

#include <catch2/catch.hpp>

#include <string>
#include <string_view>

#include "glmproxy/mock/mock_upstream.hpp"
#include "glmproxy/proxy_client.hpp"
#include "support/mock_client.hpp"

using glmproxy::ChatRequest;
using glmproxy::ContentPart;
using glmproxy::ErrorCode;
using glmproxy::Message;
using glmproxy::Protocol;
using glmproxy::Tool;
using glmproxy::ToolCall;
using glmproxy::ToolChoice;

namespace {

bool contains(std::string_view haystack, std::string_view needle) {
  return haystack.find(needle) != std::string_view::npos;
}

ChatRequest vision_and_tools(Protocol protocol, std::string image_url) {
  ChatRequest request;
  request.protocol = protocol;
  request.system = "Be brief.";
  Message ask{"user", "What is this, and the weather there?"};
  ask.parts = {ContentPart::image_url(std::move(image_url))};
  Message called{"assistant", ""};
  called.tool_calls = {ToolCall{"call_1", "get_weather", R"({"city":"Paris"})"}};
  request.messages = {ask, called, Message{"tool", "18C", "call_1"}};
  request.tools = {Tool{"get_weather", "Weather of a city", R"({"type":"object"})"}};
  request.tool_choice = ToolChoice{ToolChoice::Type::Auto};
  return request;
}

}  // namespace

TEST_CASE("typed request: image parts, tools and tool calls reach the upstream",
          "[client][typed]") {
  for (Protocol protocol : {Protocol::OpenAI, Protocol::Anthropic}) {
    INFO("protocol " << static_cast<int>(protocol));
    auto server = test_support::start_mock();
    glmproxy::Config config = test_support::config_for(*server);
    config.cache.enabled = true;
    auto client = test_support::make_client(config);

    auto reply = client.complete(vision_and_tools(protocol, "https://example.com/a.png"));
    INFO((reply ? "" : reply.error().describe()));
    REQUIRE(reply);
    auto recorded = server->recorded();
    REQUIRE(recorded.size() == 1);
    const std::string& body = recorded[0].body;
    INFO(body);
    if (protocol == Protocol::OpenAI) {
      CHECK(contains(body, R"({"role":"system","content":"Be brief."})"));
      CHECK(contains(body,
                     R"({"type":"image_url","image_url":{"url":"https://example.com/a.png"}})"));
      CHECK(contains(body, R"("tool_calls":[{"id":"call_1","type":"function")"));
      CHECK(contains(body, R"("tools":[{"type":"function","function":{"name":"get_weather")"));
      CHECK(contains(body, R"("tool_choice":"auto")"));
    } else {
      CHECK(contains(body, R"("system":"Be brief.")"));
      CHECK(contains(
          body, R"({"type":"image","source":{"type":"url","url":"https://example.com/a.png"}})"));
      CHECK(contains(
          body,
          R"({"type":"tool_use","id":"call_1","name":"get_weather","input":{"city":"Paris"}})"));
      CHECK(contains(body, R"("tools":[{"name":"get_weather")"));
      CHECK(contains(body, R"("tool_choice":{"type":"auto"})"));
    }

    // The same request is a cache hit; another image is not.
    auto again = client.complete(vision_and_tools(protocol, "https://example.com/a.png"));
    REQUIRE(again);
    CHECK(again->from_cache);
    auto other = client.complete(vision_and_tools(protocol, "https://example.com/b.png"));
    REQUIRE(other);
    CHECK_FALSE(other->from_cache);
    CHECK(server->recorded().size() == 2);

    // Bad input never leaves the process.
    ChatRequest bad = vision_and_tools(protocol, "https://example.com/a.png");
    bad.tools[0].parameters_json = "{oops";
    auto refused = client.complete(bad);
    REQUIRE_FALSE(refused);
    CHECK(refused.error().code == ErrorCode::InvalidArgument);
    CHECK(contains(refused.error().message, "tools[0].parameters_json"));
    CHECK(server->recorded().size() == 2);
  }
}
