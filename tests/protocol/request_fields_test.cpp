// The typed request fields of issue 16 (content parts, tools, tool_choice, typed tool calls,
// response_format): the exact body each protocol writer sends, and InvalidArgument naming the
// field for bad input. Fixture shapes come from the public API references named at each test.

#include <simdjson.h>

#include <catch2/catch.hpp>

#include <string>
#include <string_view>
#include <vector>

#include "support/request_body.hpp"

using glmproxy::ChatRequest;
using glmproxy::ContentPart;
using glmproxy::Error;
using glmproxy::ErrorCode;
using glmproxy::Message;
using glmproxy::Protocol;
using glmproxy::ResponseFormat;
using glmproxy::Tool;
using glmproxy::ToolCall;
using glmproxy::ToolChoice;

namespace {

ChatRequest request_for(Protocol protocol, std::vector<Message> messages) {
  ChatRequest request;
  request.protocol = protocol;
  request.messages = std::move(messages);
  return request;
}

// A vision model, as the content-part bodies are for one.
constexpr std::string_view kModel = "glm-4.6v";

std::string body_of(const ChatRequest& request, bool stream = false) {
  return test_support::body_of(request, kModel, stream);
}

Error error_of(const ChatRequest& request) { return test_support::error_of(request, kModel); }

bool contains(std::string_view haystack, std::string_view needle) {
  return haystack.find(needle) != std::string_view::npos;
}

void check_invalid(const ChatRequest& request, std::string_view field) {
  const Error e = error_of(request);
  INFO(e.message);
  CHECK(e.code == ErrorCode::InvalidArgument);
  CHECK(contains(e.message, field));
}

Message user_with(std::string text, std::vector<ContentPart> parts) {
  Message m{"user", std::move(text)};
  m.parts = std::move(parts);
  return m;
}

const std::vector<Protocol> kBoth = {Protocol::OpenAI, Protocol::Anthropic};

}  // namespace

// --- content parts ----------------------------------------------------------------------------

// Shapes: OpenAI chat completions reference (user message content parts: "text",
// "image_url" {url, detail}; base64 as a data: URL) and Z.AI's chat completion reference for
// vision models (https://docs.z.ai/api-reference/llm/chat-completion: content items image_url,
// video_url and file_url, each {"url": ...}).
TEST_CASE("OpenAI body: content parts for vision models, system kept", "[protocol][parts]") {
  ChatRequest request = request_for(
      Protocol::OpenAI, {user_with("What is in these?",
                                   {ContentPart::image_url("https://example.com/cat.png", "high"),
                                    ContentPart::image_base64("image/png", "iVBORw0KGgo="),
                                    ContentPart::video_url("https://example.com/clip.mp4"),
                                    ContentPart::file_url("https://example.com/report.pdf"),
                                    ContentPart::from_text("Answer briefly.")})});
  request.system = "You see images.";
  CHECK(body_of(request) ==
        R"({"model":"glm-4.6v","messages":[{"role":"system","content":"You see images."},)"
        R"({"role":"user","content":[{"type":"text","text":"What is in these?"},)"
        R"({"type":"image_url","image_url":{"url":"https://example.com/cat.png","detail":"high"}},)"
        R"({"type":"image_url","image_url":{"url":"data:image/png;base64,iVBORw0KGgo="}},)"
        R"({"type":"video_url","video_url":{"url":"https://example.com/clip.mp4"}},)"
        R"({"type":"file_url","file_url":{"url":"https://example.com/report.pdf"}},)"
        R"({"type":"text","text":"Answer briefly."}]}]})");

  // No content: the parts alone.
  request.messages[0].content.clear();
  request.messages[0].parts.resize(1);
  request.system.reset();
  CHECK(
      body_of(request) ==
      R"({"model":"glm-4.6v","messages":[{"role":"user","content":[)"
      R"({"type":"image_url","image_url":{"url":"https://example.com/cat.png","detail":"high"}}]}]})");
}

// Shapes: Anthropic Messages reference, content blocks: "text"; "image" with source
// {"type":"url","url"} or {"type":"base64","media_type","data"}; "document" with a url source.
TEST_CASE("Anthropic body: content parts become image and document blocks, system kept",
          "[protocol][parts]") {
  ChatRequest request =
      request_for(Protocol::Anthropic,
                  {user_with("What is in these?",
                             {ContentPart::image_url("https://example.com/cat.png", "high"),
                              ContentPart::image_base64("image/jpeg", "/9j/4AAQ", "low"),
                              ContentPart::image_url("data:image/gif;base64,R0lGOD"),
                              ContentPart::file_url("https://example.com/report.pdf")})});
  request.system = "You see images.";
  // detail has no Anthropic field: not sent.
  CHECK(
      body_of(request) ==
      R"({"model":"glm-4.6v","max_tokens":4096,"system":"You see images.","messages":[)"
      R"({"role":"user","content":[{"type":"text","text":"What is in these?"},)"
      R"({"type":"image","source":{"type":"url","url":"https://example.com/cat.png"}},)"
      R"({"type":"image","source":{"type":"base64","media_type":"image/jpeg","data":"/9j/4AAQ"}},)"
      R"({"type":"image","source":{"type":"base64","media_type":"image/gif","data":"R0lGOD"}},)"
      R"({"type":"document","source":{"type":"url","url":"https://example.com/report.pdf"}}]}]})");

  SECTION("a video has no Anthropic block: InvalidArgument naming the part") {
    request.messages[0].parts.push_back(ContentPart::video_url("https://example.com/clip.mp4"));
    const Error e = error_of(request);
    CHECK(e.code == ErrorCode::InvalidArgument);
    CHECK(contains(e.message, "messages[0].parts[4] is a video_url part"));
  }
  SECTION("a data: URL that is not base64 cannot be an Anthropic source") {
    request.messages[0].parts = {ContentPart::image_url("data:text/plain,hello")};
    check_invalid(request, "messages[0].parts[0].url");
  }
}

// Text parts on other roles: OpenAI takes an array of text parts for system, assistant and tool
// messages (chat completions reference); Anthropic has text blocks for assistant turns and
// tool_result content, and one system string.
TEST_CASE("text parts on system, assistant and tool messages", "[protocol][parts]") {
  Message system{"system", "Rule one."};
  system.parts = {ContentPart::from_text("Rule two.")};
  Message assistant{"assistant", ""};
  assistant.parts = {ContentPart::from_text("Part A."), ContentPart::from_text("Part B.")};
  Message tool{"tool", "", "call_1"};
  tool.parts = {ContentPart::from_text("18C")};
  const std::vector<Message> messages = {system, Message{"user", "Hi"}, assistant, tool};

  CHECK(
      body_of(request_for(Protocol::OpenAI, messages)) ==
      R"({"model":"glm-4.6v","messages":[)"
      R"({"role":"system","content":[{"type":"text","text":"Rule one."},{"type":"text","text":"Rule two."}]},)"
      R"({"role":"user","content":"Hi"},)"
      R"({"role":"assistant","content":[{"type":"text","text":"Part A."},{"type":"text","text":"Part B."}]},)"
      R"({"role":"tool","tool_call_id":"call_1","content":[{"type":"text","text":"18C"}]}]})");
  CHECK(
      body_of(request_for(Protocol::Anthropic, messages)) ==
      R"({"model":"glm-4.6v","max_tokens":4096,"system":"Rule one.\n\nRule two.","messages":[)"
      R"({"role":"user","content":"Hi"},)"
      R"({"role":"assistant","content":[{"type":"text","text":"Part A."},{"type":"text","text":"Part B."}]},)"
      R"({"role":"user","content":[{"type":"tool_result","tool_use_id":"call_1","content":[{"type":"text","text":"18C"}]}]}]})");
}

TEST_CASE("bad content parts are InvalidArgument naming the part", "[protocol][parts]") {
  for (Protocol protocol : kBoth) {
    INFO("protocol " << static_cast<int>(protocol));
    const auto with_part = [&](ContentPart part, std::string role = "user") {
      Message m{std::move(role), ""};
      m.parts = {ContentPart::from_text("look"), std::move(part)};
      return request_for(protocol, {Message{"user", "first"}, m});
    };
    check_invalid(with_part(ContentPart::image_url("")), "messages[1].parts[1].url must not be");
    check_invalid(with_part(ContentPart::from_text("")), "messages[1].parts[1].text must not be");
    check_invalid(with_part(ContentPart::image_base64("image/png", "")),
                  "messages[1].parts[1].data must not be");
    check_invalid(with_part(ContentPart::image_base64("", "AAAA")),
                  "messages[1].parts[1].media_type");
    check_invalid(with_part(ContentPart::image_base64("image/png", "data:image/png;base64,AAAA")),
                  "messages[1].parts[1].data must be the base64 bytes");
    check_invalid(with_part(ContentPart::file_url("")), "messages[1].parts[1].url");
    check_invalid(with_part(ContentPart::image_url("https://x/a.png"), "assistant"),
                  "messages[1].parts[1] is a image_url part, which only user messages");
    check_invalid(with_part(ContentPart::image_url("https://x/\xFF.png")),
                  "messages[1].parts[1].url is not valid UTF-8");
    check_invalid(with_part(ContentPart::from_text("\xC0\xAF")),
                  "messages[1].parts[1].text is not valid UTF-8");
    ContentPart unknown;
    unknown.type = static_cast<ContentPart::Type>(99);
    check_invalid(with_part(unknown), "messages[1].parts[1] has an unknown type");
  }
}

// --- tools and tool_choice --------------------------------------------------------------------

namespace {

std::vector<Tool> weather_tools() {
  Tool weather{"get_weather", "Current weather of a city",
               R"({ "type": "object", "properties": { "city": {"type": "string"} },
                    "required": ["city"] })"};
  weather.strict = true;
  return {weather, Tool{"get_time"}};
}

}  // namespace

// Shapes: OpenAI chat completions reference, "tools" ({"type":"function","function":{name,
// description, parameters, strict}}) and "tool_choice" ("none"/"auto"/"required" or
// {"type":"function","function":{"name"}}); Z.AI's chat completion reference uses the same
// function tool shape (and documents tool_choice "auto").
TEST_CASE("OpenAI body: typed tools and every tool_choice", "[protocol][tools]") {
  ChatRequest request = request_for(Protocol::OpenAI, {Message{"user", "Weather?"}});
  request.tools = weather_tools();
  request.tool_choice = ToolChoice{};
  CHECK(
      body_of(request, true) ==
      R"({"model":"glm-4.6v","messages":[{"role":"user","content":"Weather?"}],"tools":[)"
      R"({"type":"function","function":{"name":"get_weather","description":"Current weather of a city",)"
      R"("parameters":{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]},"strict":true}},)"
      R"({"type":"function","function":{"name":"get_time"}}],"tool_choice":"auto",)"
      R"("stream":true,"stream_options":{"include_usage":true}})");

  const auto choice_of = [&](ToolChoice choice) {
    request.tool_choice = choice;
    simdjson::dom::parser parser;
    const std::string body = body_of(request);
    return simdjson::minify(parser.parse(body)["tool_choice"]);
  };
  CHECK(choice_of({ToolChoice::Type::None}) == R"("none")");
  CHECK(choice_of({ToolChoice::Type::Required}) == R"("required")");
  CHECK(choice_of(ToolChoice::function("get_weather")) ==
        R"({"type":"function","function":{"name":"get_weather"}})");

  // No tools, no choice: neither key.
  request.tools.clear();
  request.tool_choice.reset();
  CHECK(body_of(request) ==
        R"({"model":"glm-4.6v","messages":[{"role":"user","content":"Weather?"}]})");
}

// Shapes: Anthropic Messages reference, "tools" ({name, description, input_schema}) and
// "tool_choice" ({"type":"auto"|"any"|"none"} or {"type":"tool","name"}).
TEST_CASE("Anthropic body: typed tools and every tool_choice", "[protocol][tools]") {
  ChatRequest request = request_for(Protocol::Anthropic, {Message{"user", "Weather?"}});
  request.tools = weather_tools();
  request.tool_choice = ToolChoice::function("get_weather");
  CHECK(
      body_of(request) ==
      R"({"model":"glm-4.6v","max_tokens":4096,"messages":[{"role":"user","content":"Weather?"}],)"
      R"("tools":[{"name":"get_weather","description":"Current weather of a city",)"
      R"("input_schema":{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}},)"
      R"({"name":"get_time","input_schema":{"type":"object"}}],)"
      R"("tool_choice":{"type":"tool","name":"get_weather"}})");

  const auto choice_of = [&](ToolChoice choice) {
    request.tool_choice = choice;
    simdjson::dom::parser parser;
    const std::string body = body_of(request);
    return simdjson::minify(parser.parse(body)["tool_choice"]);
  };
  CHECK(choice_of({ToolChoice::Type::Auto}) == R"({"type":"auto"})");
  CHECK(choice_of({ToolChoice::Type::None}) == R"({"type":"none"})");
  CHECK(choice_of({ToolChoice::Type::Required}) == R"({"type":"any"})");
}

TEST_CASE("bad tools and tool_choice are InvalidArgument naming the field", "[protocol][tools]") {
  for (Protocol protocol : kBoth) {
    INFO("protocol " << static_cast<int>(protocol));
    ChatRequest request = request_for(protocol, {Message{"user", "Weather?"}});
    request.tools = weather_tools();
    request.tools[1].parameters_json = "{not json";
    check_invalid(request, "tools[1].parameters_json must be a JSON object, but it is not valid");
    request.tools[1].parameters_json = R"(["an","array"])";
    check_invalid(request, "tools[1].parameters_json must be a JSON object");
    request.tools[1].parameters_json.clear();
    request.tools[1].name.clear();
    check_invalid(request, "tools[1].name must not be empty");
    request.tools[1].name = "ok";
    request.tools[0].description = "\xFF";
    check_invalid(request, "tools[0].description is not valid UTF-8");
    request.tools[0].description.clear();
    request.tool_choice = ToolChoice{ToolChoice::Type::Function};
    check_invalid(request, "tool_choice.name must not be empty");
    request.tool_choice = ToolChoice{static_cast<ToolChoice::Type>(42)};
    check_invalid(request, "tool_choice has an unknown type");
  }
}

// --- typed tool calls and tool results --------------------------------------------------------

// A tool loop written with typed calls: the reply's ChatResponse::tool_calls copied into the
// assistant message, then one tool message per call. Shapes: OpenAI chat completions reference
// (assistant "tool_calls", role "tool" with "tool_call_id"); Anthropic Messages reference
// ("tool_use" blocks, then one user turn holding every "tool_result").
TEST_CASE("typed tool calls and tool results, both protocols", "[protocol][tools]") {
  Message assistant{"assistant", ""};
  assistant.tool_calls = {ToolCall{"call_1", "get_weather", R"({"city": "Paris"})"},
                          ToolCall{"call_2", "get_time", ""}};
  const std::vector<Message> messages = {Message{"user", "Weather and time?"}, assistant,
                                         Message{"tool", "18C", "call_1"},
                                         Message{"tool", "12:00", "call_2"}};

  CHECK(
      body_of(request_for(Protocol::OpenAI, messages)) ==
      R"({"model":"glm-4.6v","messages":[{"role":"user","content":"Weather and time?"},)"
      R"({"role":"assistant","content":null,"tool_calls":[)"
      R"({"id":"call_1","type":"function","function":{"name":"get_weather","arguments":"{\"city\": \"Paris\"}"}},)"
      R"({"id":"call_2","type":"function","function":{"name":"get_time","arguments":"{}"}}]},)"
      R"({"role":"tool","tool_call_id":"call_1","content":"18C"},)"
      R"({"role":"tool","tool_call_id":"call_2","content":"12:00"}]})");
  CHECK(
      body_of(request_for(Protocol::Anthropic, messages)) ==
      R"({"model":"glm-4.6v","max_tokens":4096,"messages":[{"role":"user","content":"Weather and time?"},)"
      R"({"role":"assistant","content":[)"
      R"({"type":"tool_use","id":"call_1","name":"get_weather","input":{"city":"Paris"}},)"
      R"({"type":"tool_use","id":"call_2","name":"get_time","input":{}}]},)"
      R"({"role":"user","content":[{"type":"tool_result","tool_use_id":"call_1","content":"18C"},)"
      R"({"type":"tool_result","tool_use_id":"call_2","content":"12:00"}]}]})");

  // Text next to the calls comes first, for both.
  std::vector<Message> with_text = messages;
  with_text[1].content = "Checking.";
  CHECK(contains(body_of(request_for(Protocol::OpenAI, with_text)),
                 R"({"role":"assistant","content":"Checking.","tool_calls":[)"));
  CHECK(contains(
      body_of(request_for(Protocol::Anthropic, with_text)),
      R"({"role":"assistant","content":[{"type":"text","text":"Checking."},{"type":"tool_use")"));

  // typed and raw calls give the same body.
  std::vector<Message> raw = messages;
  raw[1].tool_calls.clear();
  raw[1].tool_calls_json =
      R"([{"id":"call_1","type":"function","function":{"name":"get_weather","arguments":"{\"city\": \"Paris\"}"}},)"
      R"({"id":"call_2","type":"function","function":{"name":"get_time","arguments":"{}"}}])";
  for (Protocol protocol : kBoth) {
    CHECK(body_of(request_for(protocol, raw)) == body_of(request_for(protocol, messages)));
  }
}

TEST_CASE("bad typed tool calls are InvalidArgument naming the field", "[protocol][tools]") {
  Message assistant{"assistant", ""};
  assistant.tool_calls = {ToolCall{"call_1", "get_weather", R"({"city":"Paris"})"}};
  for (Protocol protocol : kBoth) {
    INFO("protocol " << static_cast<int>(protocol));
    std::vector<Message> messages = {Message{"user", "Weather?"}, assistant};
    messages[1].tool_calls_json = "[]";
    check_invalid(request_for(protocol, messages), "messages[1] has both tool_calls and");
    messages[1].tool_calls_json.clear();
    messages[1].tool_calls[0].id.clear();
    check_invalid(request_for(protocol, messages), "messages[1].tool_calls[0].id must not be");
    messages[1].tool_calls[0] = ToolCall{"call_1", "", "{}"};
    check_invalid(request_for(protocol, messages), "messages[1].tool_calls[0].name must not be");
    messages[1].tool_calls[0] = ToolCall{"call_1", "f", "\xFF"};
    check_invalid(request_for(protocol, messages), "messages[1].tool_calls[0].");
    messages[0].tool_calls = assistant.tool_calls;
    check_invalid(request_for(protocol, messages),
                  "messages[0].tool_calls is only for assistant messages");
  }
  // Anthropic needs the arguments as an object; OpenAI sends them as the string they are.
  std::vector<Message> messages = {Message{"user", "Weather?"}, assistant};
  messages[1].tool_calls[0].arguments_json = "{not json";
  check_invalid(request_for(Protocol::Anthropic, messages),
                "messages[1].tool_calls[0].arguments_json must be a JSON object");
  messages[1].tool_calls[0].arguments_json = "[1]";
  check_invalid(request_for(Protocol::Anthropic, messages),
                "messages[1].tool_calls[0].arguments_json must be a JSON object");
  CHECK(contains(body_of(request_for(Protocol::OpenAI, messages)), R"("arguments":"[1]")"));
}

// --- response_format --------------------------------------------------------------------------

// Shapes: OpenAI chat completions reference, "response_format": {"type":"text"},
// {"type":"json_object"}, {"type":"json_schema","json_schema":{name, description, schema,
// strict}}; Z.AI's chat completion reference documents text and json_object.
TEST_CASE("OpenAI body: response_format text, json_object and json_schema", "[protocol][format]") {
  ChatRequest request = request_for(Protocol::OpenAI, {Message{"user", "A city as JSON."}});
  const std::string prefix =
      R"({"model":"glm-4.6v","messages":[{"role":"user","content":"A city as JSON."}],)";
  request.response_format = ResponseFormat{};
  CHECK(body_of(request) == prefix + R"("response_format":{"type":"text"}})");
  request.response_format = ResponseFormat{ResponseFormat::Type::JsonObject};
  CHECK(body_of(request) == prefix + R"("response_format":{"type":"json_object"}})");
  request.response_format = ResponseFormat::json_schema(
      "city", R"({"type": "object", "properties": {"name": {"type": "string"}}})", true);
  request.response_format->description = "One city";
  CHECK(
      body_of(request) ==
      prefix +
          R"("response_format":{"type":"json_schema","json_schema":{"name":"city",)"
          R"("description":"One city","schema":{"type":"object","properties":{"name":{"type":"string"}}},)"
          R"("strict":true}}})");
  request.response_format->strict.reset();
  request.response_format->description.clear();
  CHECK(body_of(request) ==
        prefix + R"("response_format":{"type":"json_schema","json_schema":{"name":"city",)"
                 R"("schema":{"type":"object","properties":{"name":{"type":"string"}}}}}})");

  request.response_format->schema_json = "{\"type\":";
  check_invalid(request, "response_format.schema_json must be a JSON object, but it is not valid");
  request.response_format->schema_json = "true";
  check_invalid(request, "response_format.schema_json must be a JSON object");
  request.response_format->schema_json.clear();
  check_invalid(request, "response_format.schema_json must not be empty");
  request.response_format->schema_json = "{}";
  request.response_format->name.clear();
  check_invalid(request, "response_format.name must not be empty");
  request.response_format->type = static_cast<ResponseFormat::Type>(7);
  check_invalid(request, "response_format has an unknown type");
}

// The Messages API has no response_format (Anthropic Messages reference): text, the default,
// sends nothing; JSON formats are refused rather than silently dropped.
TEST_CASE("Anthropic body: response_format text sends nothing, JSON is InvalidArgument",
          "[protocol][format]") {
  ChatRequest request = request_for(Protocol::Anthropic, {Message{"user", "A city as JSON."}});
  const std::string plain = body_of(request);
  request.response_format = ResponseFormat{};
  CHECK(body_of(request) == plain);
  request.response_format = ResponseFormat{ResponseFormat::Type::JsonObject};
  check_invalid(request, "response_format json_object is not supported by the Anthropic");
  request.response_format = ResponseFormat::json_schema("city", R"({"type":"object"})");
  check_invalid(request, "response_format json_schema is not supported by the Anthropic");
}

// --- extra_json still merges last --------------------------------------------------------------

TEST_CASE("extra_json replaces typed tools, tool_choice and response_format", "[protocol][extra]") {
  for (Protocol protocol : kBoth) {
    INFO("protocol " << static_cast<int>(protocol));
    ChatRequest request = request_for(protocol, {Message{"user", "Hi"}});
    request.tools = weather_tools();
    request.tool_choice = ToolChoice{ToolChoice::Type::Required};
    if (protocol == Protocol::OpenAI) {
      request.response_format = ResponseFormat{ResponseFormat::Type::JsonObject};
    }
    request.extra_json =
        R"({"tools":[{"type":"web_search","web_search":{"enable":true}}],"tool_choice":"auto",)"
        R"("response_format":{"type":"text"},"user":"u1"})";
    const std::string body = body_of(request);
    const std::string tail =
        R"("tools":[{"type":"web_search","web_search":{"enable":true}}],"tool_choice":"auto",)"
        R"("response_format":{"type":"text"},"user":"u1"})";
    INFO(body);
    CHECK(body.ends_with(tail));
    CHECK_FALSE(contains(body, "get_weather"));
    CHECK_FALSE(contains(body, "required"));
    CHECK_FALSE(contains(body, "any"));
  }
}
