#include "protocol/protocol.hpp"

#include <simdjson.h>

#include <catch2/catch.hpp>

#include <chrono>
#include <cmath>
#include <limits>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "core/json.hpp"

using namespace std::chrono_literals;
using glmproxy::ChatRequest;
using glmproxy::ChatResponse;
using glmproxy::Error;
using glmproxy::ErrorCode;
using glmproxy::Message;
using glmproxy::Protocol;
using glmproxy::Result;
namespace detail = glmproxy::detail;

namespace {

// A parsed request body that owns its parser, for looking at what the writers produced.
struct Json {
  simdjson::dom::parser parser;
  simdjson::dom::element root;
  simdjson::error_code error = simdjson::SUCCESS;

  explicit Json(const std::string& text) { error = parser.parse(text).get(root); }

  simdjson::dom::element at(std::string_view pointer) {
    simdjson::dom::element e;
    const auto err = root.at_pointer(pointer).get(e);
    INFO("JSON pointer " << pointer);
    REQUIRE(err == simdjson::SUCCESS);
    return e;
  }
  bool has(std::string_view pointer) {
    simdjson::dom::element e;
    return root.at_pointer(pointer).get(e) == simdjson::SUCCESS;
  }
  std::string str(std::string_view pointer) {
    std::string_view s;
    REQUIRE(at(pointer).get_string().get(s) == simdjson::SUCCESS);
    return std::string(s);
  }
  std::int64_t integer(std::string_view pointer) {
    std::int64_t v = 0;
    REQUIRE(at(pointer).get_int64().get(v) == simdjson::SUCCESS);
    return v;
  }
  double number(std::string_view pointer) {
    double v = 0;
    REQUIRE(at(pointer).get_double().get(v) == simdjson::SUCCESS);
    return v;
  }
  // Top-level keys in order, duplicates kept (simdjson's DOM keeps them).
  std::vector<std::string> keys() {
    std::vector<std::string> out;
    simdjson::dom::object object;
    REQUIRE(root.get_object().get(object) == simdjson::SUCCESS);
    for (simdjson::dom::key_value_pair kv : object) out.emplace_back(kv.key);
    return out;
  }
  std::string minified(std::string_view pointer) { return simdjson::minify(at(pointer)); }
};

ChatRequest simple_request(Protocol protocol, std::string content = "Hello") {
  ChatRequest request;
  request.protocol = protocol;
  request.messages = {{"user", std::move(content), {}, {}}};
  return request;
}

std::string write_ok(const ChatRequest& request, bool stream = false) {
  auto body = detail::write_chat_request(request, "glm-4.7", stream);
  INFO((body ? std::string() : body.error().describe()));
  REQUIRE(body.has_value());
  Json check(*body);
  REQUIRE(check.error == simdjson::SUCCESS);
  return *body;
}

Error write_error(const ChatRequest& request) {
  auto body = detail::write_chat_request(request, "glm-4.7", false);
  REQUIRE_FALSE(body.has_value());
  return body.error();
}

bool contains(std::string_view haystack, std::string_view needle) {
  return haystack.find(needle) != std::string_view::npos;
}

std::string all_control_chars() {
  std::string s;
  for (int c = 0; c < 0x20; ++c) s += static_cast<char>(c);
  return s;
}

// Every kind of character a writer must escape or pass through untouched.
std::string nasty_string() {
  std::string s = all_control_chars();
  s += "\"quoted\" back\\slash /slash ";
  s += "\xC3\xA9";                   // é (2 bytes)
  s += "\xE4\xB8\xAD\xE6\x96\x87";   // 中文 (3 bytes)
  s += "\xF0\x9F\x98\x80";           // 😀 (4 bytes)
  s += "\xE2\x80\xA8 \xE2\x80\xA9";  // U+2028 LINE SEPARATOR, U+2029 PARAGRAPH SEPARATOR
  s += "\xE2\x82\xAC";               // € (0xE2 lead byte that is not U+2028)
  s += "\x7F </script> {}[],:";
  return s;
}

const std::vector<std::string> kInvalidUtf8 = {
    std::string("\x80", 1),  // lone continuation byte
    std::string("a\xBF"
                "b",
                3),                      // continuation byte mid-string
    std::string("\xC0\xAF", 2),          // overlong '/'
    std::string("\xE0\x80\xAF", 3),      // overlong 3-byte
    std::string("\xF0\x80\x80\xAF", 4),  // overlong 4-byte
    std::string("\xE2\x82", 2),          // truncated 3-byte sequence
    std::string("x\xF0\x9F\x98", 4),     // truncated emoji
    std::string("\xED\xA0\x80", 3),      // UTF-16 surrogate U+D800 encoded
    std::string("\xED\xBF\xBF", 3),      // surrogate U+DFFF
    std::string("\xF4\x90\x80\x80", 4),  // above U+10FFFF
    std::string("\xFF", 1),              // never valid
    std::string("\xC3"
                "A",
                2),  // lead byte followed by ASCII
};

Result<ChatResponse> parse(Protocol protocol, std::string body) {
  return detail::parse_chat_response(protocol, body);
}

const auto kNow = std::chrono::sys_days(std::chrono::year(2025) / 1 / 15) + 12h;

Error map(Protocol protocol, int status, std::string body, std::string_view retry_after = {},
          std::string_view retry_after_ms = {}) {
  return detail::map_error_response(protocol, status, body, retry_after, retry_after_ms, kNow);
}

constexpr std::string_view kZaiBody = R"({
  "id": "20250115120000abcdef",
  "request_id": "req-1",
  "created": 1736942400,
  "model": "glm-4.7",
  "object": "chat.completion",
  "choices": [
    {
      "index": 0,
      "finish_reason": "tool_calls",
      "message": {
        "role": "assistant",
        "content": "Let me check the weather. \u4e2d\u6587 \ud83d\ude00",
        "reasoning_content": "The user wants weather.\nI should call get_weather.",
        "tool_calls": [
          {
            "id": "call_abc123",
            "index": 0,
            "type": "function",
            "function": {"name": "get_weather", "arguments": "{\"city\":\"Beijing\",\"unit\":\"c\"}"}
          },
          {
            "id": "call_def456",
            "index": 1,
            "type": "function",
            "function": {"name": "get_time", "arguments": "{}"}
          }
        ]
      }
    }
  ],
  "usage": {"prompt_tokens": 120, "completion_tokens": 45, "total_tokens": 165,
            "prompt_tokens_details": {"cached_tokens": 0}}
})";

constexpr std::string_view kAnthropicBody = R"({
  "id": "msg_01XFDUDYJgAACzvnptvVoYEL",
  "type": "message",
  "role": "assistant",
  "model": "glm-4.7",
  "content": [
    {"type": "thinking", "thinking": "Let me think.", "signature": "abc"},
    {"type": "text", "text": "Hello, "},
    {"type": "text", "text": "world \u2028!"},
    {"type": "tool_use", "id": "toolu_01", "name": "get_weather",
     "input": {"city": "Paris", "days": [1, 2], "nested": {"a": null}}}
  ],
  "stop_reason": "tool_use",
  "stop_sequence": null,
  "usage": {"input_tokens": 2095, "output_tokens": 503}
})";

}  // namespace

// --- escaping --------------------------------------------------------------------------------

// The escaper itself (core/json.hpp) is tested in tests/core/json_test.cpp.

TEST_CASE("strings round-trip through a request body", "[protocol][escape]") {
  const std::string nasty = nasty_string();
  for (Protocol protocol : {Protocol::OpenAI, Protocol::Anthropic}) {
    INFO("protocol " << static_cast<int>(protocol));
    ChatRequest request = simple_request(protocol, nasty);
    request.system = nasty;
    request.stop = {nasty, "\n\n"};
    request.messages.push_back({"assistant", nasty, {}, {}});
    request.messages.push_back({"tool", nasty, nasty, {}});
    const std::string body = write_ok(request);
    CHECK_FALSE(contains(body, "\xE2\x80\xA8"));  // U+2028 never appears raw
    Json json(body);
    if (protocol == Protocol::OpenAI) {
      CHECK(json.str("/messages/0/content") == nasty);  // system
      CHECK(json.str("/messages/1/content") == nasty);
      CHECK(json.str("/messages/2/content") == nasty);
      CHECK(json.str("/messages/3/content") == nasty);
      CHECK(json.str("/messages/3/tool_call_id") == nasty);
      CHECK(json.str("/stop/0") == nasty);
    } else {
      CHECK(json.str("/system") == nasty);
      CHECK(json.str("/messages/0/content") == nasty);
      CHECK(json.str("/messages/1/content") == nasty);
      CHECK(json.str("/messages/2/content/0/content") == nasty);
      CHECK(json.str("/messages/2/content/0/tool_use_id") == nasty);
      CHECK(json.str("/stop_sequences/0") == nasty);
    }
  }
}

TEST_CASE("invalid UTF-8 anywhere is InvalidArgument naming the field", "[protocol][validate]") {
  for (Protocol protocol : {Protocol::OpenAI, Protocol::Anthropic}) {
    for (const std::string& bad : kInvalidUtf8) {
      INFO("protocol " << static_cast<int>(protocol) << ", bytes of size " << bad.size());
      ChatRequest request = simple_request(protocol, bad);
      Error e = write_error(request);
      CHECK(e.code == ErrorCode::InvalidArgument);
      CHECK(contains(e.message, "messages[0].content"));

      request = simple_request(protocol);
      request.system = "ok " + bad;
      e = write_error(request);
      CHECK(e.code == ErrorCode::InvalidArgument);
      CHECK(contains(e.message, "system"));

      request = simple_request(protocol);
      request.stop = {"fine", bad};
      e = write_error(request);
      CHECK(e.code == ErrorCode::InvalidArgument);
      CHECK(contains(e.message, "stop[1]"));

      request = simple_request(protocol);
      request.messages.push_back({"tool", "result", bad, {}});
      e = write_error(request);
      CHECK(e.code == ErrorCode::InvalidArgument);
      CHECK(contains(e.message, "messages[1].tool_call_id"));

      request = simple_request(protocol);
      request.messages.push_back({"system", bad, {}, {}});
      e = write_error(request);
      CHECK(e.code == ErrorCode::InvalidArgument);
      CHECK(contains(e.message, "messages[1].content"));

      request = simple_request(protocol);
      request.extra_json = R"({"user":")" + bad + R"("})";
      e = write_error(request);
      CHECK(e.code == ErrorCode::InvalidArgument);
      CHECK(contains(e.message, "extra_json"));

      auto body = detail::write_chat_request(simple_request(protocol), bad, false);
      REQUIRE_FALSE(body.has_value());
      CHECK(body.error().code == ErrorCode::InvalidArgument);
      CHECK(contains(body.error().message, "model"));
    }
  }
}

// --- request validation ------------------------------------------------------------------------

TEST_CASE("request validation errors", "[protocol][validate]") {
  for (Protocol protocol : {Protocol::OpenAI, Protocol::Anthropic}) {
    INFO("protocol " << static_cast<int>(protocol));
    ChatRequest request = simple_request(protocol);
    request.messages.clear();
    Error e = write_error(request);
    CHECK(e.code == ErrorCode::InvalidArgument);
    CHECK(contains(e.message, "messages"));

    request = simple_request(protocol);
    request.messages.push_back({"bot", "hi", {}, {}});
    e = write_error(request);
    CHECK(e.code == ErrorCode::InvalidArgument);
    CHECK(contains(e.message, "messages[1].role"));
    CHECK(contains(e.message, "\"bot\""));

    for (double bad :
         {std::numeric_limits<double>::infinity(), -std::numeric_limits<double>::infinity(),
          std::numeric_limits<double>::quiet_NaN()}) {
      request = simple_request(protocol);
      request.temperature = bad;
      e = write_error(request);
      CHECK(e.code == ErrorCode::InvalidArgument);
      CHECK(contains(e.message, "temperature"));
      request = simple_request(protocol);
      request.top_p = bad;
      e = write_error(request);
      CHECK(e.code == ErrorCode::InvalidArgument);
      CHECK(contains(e.message, "top_p"));
    }

    for (const char* extra : {"[1,2]", "\"text\"", "42", "null", "{\"a\":", "{a:1}", "{} {}"}) {
      INFO("extra_json " << extra);
      request = simple_request(protocol);
      request.extra_json = extra;
      e = write_error(request);
      CHECK(e.code == ErrorCode::InvalidArgument);
      CHECK(contains(e.message, "extra_json"));
    }

    for (const char* calls : {"{}", "\"x\"", "[", "nope"}) {
      INFO("tool_calls_json " << calls);
      request = simple_request(protocol);
      request.messages.push_back({"assistant", "", {}, calls});
      e = write_error(request);
      CHECK(e.code == ErrorCode::InvalidArgument);
      CHECK(contains(e.message, "messages[1].tool_calls_json"));
    }

    auto body = detail::write_chat_request(simple_request(protocol), "", false);
    REQUIRE_FALSE(body.has_value());
    CHECK(body.error().code == ErrorCode::InvalidArgument);
  }
}

// --- OpenAI writer -----------------------------------------------------------------------------

TEST_CASE("OpenAI body: minimal request has only model and messages", "[protocol][openai]") {
  Json json(write_ok(simple_request(Protocol::OpenAI)));
  CHECK(json.keys() == std::vector<std::string>{"model", "messages"});
  CHECK(json.str("/model") == "glm-4.7");
  CHECK(json.minified("/messages") == R"([{"role":"user","content":"Hello"}])");
}

TEST_CASE("OpenAI body: every optional parameter", "[protocol][openai]") {
  ChatRequest request = simple_request(Protocol::OpenAI);
  request.temperature = 0.7;
  request.top_p = 0.95;
  request.max_tokens = 1000;
  request.stop = {"END", "\n\n"};
  request.seed = -9'007'199'254'740'993;
  request.thinking = true;
  Json json(write_ok(request));
  CHECK(json.keys() == std::vector<std::string>{"model", "messages", "temperature", "top_p",
                                                "max_tokens", "stop", "seed", "thinking"});
  CHECK(json.number("/temperature") == 0.7);
  CHECK(json.number("/top_p") == 0.95);
  CHECK(json.integer("/max_tokens") == 1000);
  CHECK(json.minified("/stop") == R"(["END","\n\n"])");
  CHECK(json.integer("/seed") == -9'007'199'254'740'993);
  CHECK(json.minified("/thinking") == R"({"type":"enabled"})");

  request.thinking = false;
  request.temperature = 0.0;
  request.top_p = 1e-7;
  Json off(write_ok(request));
  CHECK(off.minified("/thinking") == R"({"type":"disabled"})");
  // Temperature 0 on a GLM model: Z.AI's greedy form (tests/protocol/zai_extras_test.cpp).
  CHECK(off.number("/temperature") == 0.01);
  CHECK(off.minified("/do_sample") == "false");
  CHECK(off.number("/top_p") == 1e-7);
}

TEST_CASE("OpenAI body: stream adds stream and stream_options", "[protocol][openai]") {
  Json json(write_ok(simple_request(Protocol::OpenAI), true));
  CHECK(json.keys() == std::vector<std::string>{"model", "messages", "stream", "stream_options"});
  CHECK(json.minified("/stream") == "true");
  CHECK(json.minified("/stream_options") == R"({"include_usage":true})");
}

TEST_CASE("OpenAI body: system, tool and assistant tool_calls messages", "[protocol][openai]") {
  ChatRequest request = simple_request(Protocol::OpenAI, "Weather in Paris?");
  request.system = "Be brief.";
  const std::string calls =
      R"([ {"id":"call_1","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Paris\"}"}} ])";
  request.messages.push_back({"assistant", "", {}, calls});
  request.messages.push_back({"tool", "18C", "call_1", {}});
  request.messages.push_back({"assistant", "It is 18C.", {}, {}});
  request.messages.push_back({"system", "Inline system.", {}, {}});
  Json json(write_ok(request));
  CHECK(json.minified("/messages/0") == R"({"role":"system","content":"Be brief."})");
  CHECK(json.minified("/messages/1") == R"({"role":"user","content":"Weather in Paris?"})");
  CHECK(
      json.minified("/messages/2") ==
      R"({"role":"assistant","content":null,"tool_calls":[{"id":"call_1","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Paris\"}"}}]})");
  CHECK(json.minified("/messages/3") ==
        R"({"role":"tool","tool_call_id":"call_1","content":"18C"})");
  CHECK(json.minified("/messages/4") == R"({"role":"assistant","content":"It is 18C."})");
  CHECK(json.minified("/messages/5") == R"({"role":"system","content":"Inline system."})");

  // Assistant text next to tool calls keeps its text.
  request.messages[1].content = "Checking.";
  Json with_text(write_ok(request));
  CHECK(with_text.str("/messages/2/content") == "Checking.");

  // An empty system is not sent.
  request.system = "";
  Json no_system(write_ok(request));
  CHECK(no_system.str("/messages/0/role") == "user");
}

TEST_CASE("extra_json members are merged and override the writer's", "[protocol][extra]") {
  for (Protocol protocol : {Protocol::OpenAI, Protocol::Anthropic}) {
    INFO("protocol " << static_cast<int>(protocol));
    ChatRequest request = simple_request(protocol);
    request.max_tokens = 100;
    request.temperature = 0.5;
    request.extra_json =
        R"({"tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object"}}}],)"
        R"("tool_choice":"auto","max_tokens":5,"stream":false,"user":"\u00e9\n"})";
    Json json(write_ok(request, true));
    std::map<std::string, int> counts;
    for (const auto& key : json.keys()) ++counts[key];
    for (const auto& [key, count] : counts) {
      INFO("key " << key);
      CHECK(count == 1);
    }
    CHECK(json.integer("/max_tokens") == 5);
    CHECK(json.minified("/stream") == "false");
    CHECK_FALSE(json.has("/stream_options"));  // only valid next to the writer's stream:true
    CHECK(json.number("/temperature") == 0.5);
    CHECK(json.str("/tool_choice") == "auto");
    CHECK(json.str("/user") == "\xC3\xA9\n");
    CHECK(json.str("/tools/0/function/name") == "f");
    CHECK(json.keys().back() == "user");  // extra members come last, in their order

    // Empty or blank extra_json adds nothing.
    request.extra_json = " \n";
    Json plain(write_ok(request));
    CHECK(plain.integer("/max_tokens") == 100);
    request.extra_json = "{}";
    CHECK(write_ok(request) == [&] {
      ChatRequest r = request;
      r.extra_json.clear();
      return write_ok(r);
    }());

    // A key repeated inside extra_json: the last one, once.
    request.extra_json = R"({"a":1,"a":2})";
    Json dup(write_ok(request));
    CHECK(dup.integer("/a") == 2);
    CHECK(dup.keys().back() == "a");
    CHECK(dup.keys().size() == plain.keys().size() + 1);
  }
}

// --- Anthropic writer --------------------------------------------------------------------------

TEST_CASE("Anthropic body: minimal request gets max_tokens 4096", "[protocol][anthropic]") {
  Json json(write_ok(simple_request(Protocol::Anthropic)));
  CHECK(json.keys() == std::vector<std::string>{"model", "max_tokens", "messages"});
  CHECK(json.integer("/max_tokens") == 4096);
  CHECK(json.minified("/messages") == R"([{"role":"user","content":"Hello"}])");
}

TEST_CASE("Anthropic body: every optional parameter, seed not sent", "[protocol][anthropic]") {
  ChatRequest request = simple_request(Protocol::Anthropic);
  request.temperature = 0.2;
  request.top_p = 0.9;
  request.max_tokens = 10'000;
  request.stop = {"STOP"};
  request.seed = 42;
  request.thinking = true;
  Json json(write_ok(request, true));
  CHECK(json.keys() == std::vector<std::string>{"model", "max_tokens", "messages", "temperature",
                                                "top_p", "stop_sequences", "thinking", "stream"});
  CHECK(json.integer("/max_tokens") == 10'000);
  CHECK(json.number("/temperature") == 0.2);
  CHECK(json.number("/top_p") == 0.9);
  CHECK(json.minified("/stop_sequences") == R"(["STOP"])");
  CHECK(json.minified("/thinking") == R"({"type":"enabled","budget_tokens":5000})");
  CHECK(json.minified("/stream") == "true");

  // No budget fits 1024 <= budget_tokens < 100 (tests/protocol/thinking_test.cpp has the rest).
  request.max_tokens = 100;
  CHECK(write_error(request).code == glmproxy::ErrorCode::InvalidArgument);
  request.max_tokens = 1500;
  CHECK(Json(write_ok(request)).minified("/thinking") ==
        R"({"type":"enabled","budget_tokens":1024})");
  request.max_tokens.reset();
  CHECK(Json(write_ok(request)).minified("/thinking") ==
        R"({"type":"enabled","budget_tokens":2048})");
  request.thinking = false;
  CHECK(Json(write_ok(request)).minified("/thinking") == R"({"type":"disabled"})");
}

TEST_CASE("Anthropic body: system prompt joins request.system and system messages",
          "[protocol][anthropic]") {
  ChatRequest request = simple_request(Protocol::Anthropic);
  request.system = "First.";
  request.messages.insert(request.messages.begin(), Message{"system", "Second.", {}, {}});
  request.messages.push_back({"system", "Third.", {}, {}});
  request.messages.push_back({"system", "", {}, {}});
  Json json(write_ok(request));
  CHECK(json.str("/system") == "First.\n\nSecond.\n\nThird.");
  CHECK(json.minified("/messages") == R"([{"role":"user","content":"Hello"}])");

  request.system.reset();
  CHECK(Json(write_ok(request)).str("/system") == "Second.\n\nThird.");

  request.messages = {{"user", "hi", {}, {}}};
  CHECK_FALSE(Json(write_ok(request)).has("/system"));

  request.messages = {{"system", "only", {}, {}}};
  CHECK(write_error(request).code == ErrorCode::InvalidArgument);
}

TEST_CASE("Anthropic body: tool calls become tool_use, tool results tool_result",
          "[protocol][anthropic]") {
  ChatRequest request = simple_request(Protocol::Anthropic, "Weather and time?");
  request.messages.push_back(
      {"assistant",
       "Let me look.",
       {},
       R"([{"id":"call_1","type":"function","function":{"name":"get_weather","arguments":"{\"city\": \"Paris\", \"days\": [1,2]}"}},)"
       R"({"id":"call_2","type":"function","function":{"name":"get_time","arguments":""}}])"});
  request.messages.push_back({"tool", "18C", "call_1", {}});
  request.messages.push_back({"tool", "12:00", "call_2", {}});
  request.messages.push_back({"assistant", "18C at noon.", {}, {}});
  request.messages.push_back({"tool", "late", "call_3", {}});
  Json json(write_ok(request));
  CHECK(
      json.minified("/messages/1") ==
      R"({"role":"assistant","content":[{"type":"text","text":"Let me look."},)"
      R"({"type":"tool_use","id":"call_1","name":"get_weather","input":{"city":"Paris","days":[1,2]}},)"
      R"({"type":"tool_use","id":"call_2","name":"get_time","input":{}}]})");
  // Consecutive tool results share one user turn.
  CHECK(
      json.minified("/messages/2") ==
      R"({"role":"user","content":[{"type":"tool_result","tool_use_id":"call_1","content":"18C"},)"
      R"({"type":"tool_result","tool_use_id":"call_2","content":"12:00"}]})");
  CHECK(json.minified("/messages/3") == R"({"role":"assistant","content":"18C at noon."})");
  CHECK(
      json.minified("/messages/4") ==
      R"({"role":"user","content":[{"type":"tool_result","tool_use_id":"call_3","content":"late"}]})");
  CHECK_FALSE(json.has("/messages/5"));

  // No text: only tool_use blocks.
  request.messages[1].content.clear();
  Json no_text(write_ok(request));
  CHECK(no_text.str("/messages/1/content/0/type") == "tool_use");
  CHECK_FALSE(no_text.has("/messages/1/content/2"));

  // Arguments already an object, and Anthropic-shaped calls, are taken as they are.
  request.messages[1].tool_calls_json =
      R"([{"id":"a","function":{"name":"f","arguments":{"x":1}}},{"id":"b","name":"g","input":{"y":2}}])";
  Json shapes(write_ok(request));
  CHECK(shapes.minified("/messages/1/content/0/input") == R"({"x":1})");
  CHECK(shapes.minified("/messages/1/content/1/input") == R"({"y":2})");

  for (const char* bad : {R"([{"id":"a","function":{"name":"f","arguments":"{not json"}}])",
                          R"([{"id":"a","function":{"name":"f","arguments":"[1]"}}])",
                          R"([{"function":{"name":"f","arguments":"{}"}}])",
                          R"([{"id":"a","function":{}}])", R"([{"id":"a"}])", R"([1])"}) {
    INFO("tool_calls_json " << bad);
    request.messages[1].tool_calls_json = bad;
    const Error e = write_error(request);
    CHECK(e.code == ErrorCode::InvalidArgument);
    CHECK(contains(e.message, "messages[1].tool_calls_json[0]"));
  }
}

// --- URLs ------------------------------------------------------------------------------------

TEST_CASE("join_url keeps the base path whatever the slashes", "[protocol][url]") {
  const std::string expected = "https://api.z.ai/api/paas/v4/chat/completions";
  CHECK(detail::join_url("https://api.z.ai/api/paas/v4", "chat/completions") == expected);
  CHECK(detail::join_url("https://api.z.ai/api/paas/v4/", "chat/completions") == expected);
  CHECK(detail::join_url("https://api.z.ai/api/paas/v4", "/chat/completions") == expected);
  CHECK(detail::join_url("https://api.z.ai/api/paas/v4/", "/chat/completions") == expected);
  CHECK(detail::join_url("https://api.z.ai/api/paas/v4//", "//chat/completions") == expected);
  CHECK(
      detail::join_url("https://api.z.ai/api/anthropic", detail::chat_path(Protocol::Anthropic)) ==
      "https://api.z.ai/api/anthropic/v1/messages");
  CHECK(detail::join_url("http://127.0.0.1:8080", "v1/messages") ==
        "http://127.0.0.1:8080/v1/messages");
  CHECK(detail::join_url("http://127.0.0.1:8080/", "") == "http://127.0.0.1:8080");
  CHECK(detail::chat_path(Protocol::OpenAI) == "chat/completions");
  CHECK(detail::chat_path(Protocol::Anthropic) == "v1/messages");
}

TEST_CASE("join_url keeps a base query a query, after the path", "[protocol][url]") {
  CHECK(detail::join_url("https://h/api/paas/v4?tenant=abc", "chat/completions") ==
        "https://h/api/paas/v4/chat/completions?tenant=abc");
  CHECK(detail::join_url("https://h/api/paas/v4/?tenant=abc", "/chat/completions") ==
        "https://h/api/paas/v4/chat/completions?tenant=abc");
  CHECK(detail::join_url("https://h?tenant=abc", "models") == "https://h/models?tenant=abc");
  // A path with its own query: the base's first, then the path's.
  CHECK(detail::join_url("https://h/v4?tenant=abc", "models?limit=2&x=y") ==
        "https://h/v4/models?tenant=abc&limit=2&x=y");
  CHECK(detail::join_url("https://h/v4", "models?limit=2") == "https://h/v4/models?limit=2");
  // Empty queries add nothing but the '?' that was asked for.
  CHECK(detail::join_url("https://h/v4?", "models") == "https://h/v4/models");
  CHECK(detail::join_url("https://h/v4?a=1", "models?") == "https://h/v4/models?a=1");
  // A fragment is never sent.
  CHECK(detail::join_url("https://h/v4?a=1#frag", "models") == "https://h/v4/models?a=1");
}

// --- response parsing --------------------------------------------------------------------------

TEST_CASE("parse a Z.AI OpenAI-style answer with reasoning and tool calls", "[protocol][parse]") {
  std::string body(kZaiBody);
  const std::string original = body;
  auto r = detail::parse_chat_response(Protocol::OpenAI, body);
  REQUIRE(r.has_value());
  CHECK(body == original);  // contents untouched
  CHECK(r->id == "20250115120000abcdef");
  CHECK(r->model == "glm-4.7");
  CHECK(r->content == "Let me check the weather. \xE4\xB8\xAD\xE6\x96\x87 \xF0\x9F\x98\x80");
  CHECK(r->reasoning_content == "The user wants weather.\nI should call get_weather.");
  CHECK(r->finish_reason == "tool_calls");
  REQUIRE(r->tool_calls.size() == 2);
  CHECK(r->tool_calls[0].id == "call_abc123");
  CHECK(r->tool_calls[0].name == "get_weather");
  CHECK(r->tool_calls[0].arguments_json == R"({"city":"Beijing","unit":"c"})");
  CHECK(r->tool_calls[1].name == "get_time");
  CHECK(r->tool_calls[1].arguments_json == "{}");
  CHECK(r->usage.prompt_tokens == 120);
  CHECK(r->usage.completion_tokens == 45);
  CHECK(r->usage.total_tokens == 165);
  CHECK(r->raw_json == original);
  CHECK(r->http_status == 0);  // the caller sets it
}

TEST_CASE("parse OpenAI: null content, missing total, no usage", "[protocol][parse]") {
  auto r =
      parse(Protocol::OpenAI,
            R"({"id":"x","model":"m","choices":[{"message":{"role":"assistant","content":null},)"
            R"("finish_reason":null}],"usage":{"prompt_tokens":3,"completion_tokens":4}})");
  REQUIRE(r.has_value());
  CHECK(r->content.empty());
  CHECK(r->finish_reason.empty());
  CHECK(r->usage.total_tokens == 7);

  r = parse(Protocol::OpenAI,
            R"({"choices":[{"message":{"content":"hi"},"finish_reason":"stop"}]})");
  REQUIRE(r.has_value());
  CHECK(r->content == "hi");
  CHECK(r->id.empty());
  CHECK(r->usage.total_tokens == 0);
  CHECK(r->tool_calls.empty());
}

TEST_CASE("parse OpenAI: missing or mistyped members are BadResponse", "[protocol][parse]") {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {R"({"id":"x"})", "choices"},
      {R"({"choices":[]})", "choices"},
      {R"({"choices":{}})", "choices"},
      {R"({"choices":[1]})", "choices[0]"},
      {R"({"choices":[{"finish_reason":"stop"}]})", "message"},
      {R"({"choices":[{"message":{"content":5}}]})", "content"},
      {R"({"choices":[{"message":{"content":"a","tool_calls":{}}}]})", "tool_calls"},
      {R"({"choices":[{"message":{"tool_calls":[{"id":"a"}]}}]})", "tool_calls[0]"},
      {R"({"choices":[{"message":{"tool_calls":[{"function":{"arguments":"{}"}}]}}]})",
       "function.name"},
      {R"({"choices":[{"message":{}}],"usage":{"prompt_tokens":"3"}})", "usage.prompt_tokens"},
      {R"({"choices":[{"message":{}}],"usage":{"prompt_tokens":1.5}})", "usage.prompt_tokens"},
      {R"({"choices":[{"message":{}}],"id":7})", "id"},
      {R"([1,2])", "object"},
      {"", "JSON"},
      {"<html>502</html>", "JSON"},
  };
  for (const auto& [body, what] : cases) {
    INFO("body " << body);
    auto r = parse(Protocol::OpenAI, body);
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error().code == ErrorCode::BadResponse);
    CHECK(contains(r.error().message, what));
  }
}

TEST_CASE("parse an Anthropic answer", "[protocol][parse]") {
  std::string body(kAnthropicBody);
  const std::string original = body;
  auto r = detail::parse_chat_response(Protocol::Anthropic, body);
  REQUIRE(r.has_value());
  CHECK(body == original);
  CHECK(r->id == "msg_01XFDUDYJgAACzvnptvVoYEL");
  CHECK(r->model == "glm-4.7");
  CHECK(r->content == "Hello, world \xE2\x80\xA8!");
  CHECK(r->reasoning_content == "Let me think.");
  CHECK(r->finish_reason == "tool_use");
  REQUIRE(r->tool_calls.size() == 1);
  CHECK(r->tool_calls[0].id == "toolu_01");
  CHECK(r->tool_calls[0].name == "get_weather");
  CHECK(r->tool_calls[0].arguments_json == R"({"city":"Paris","days":[1,2],"nested":{"a":null}})");
  CHECK(r->usage.prompt_tokens == 2095);
  CHECK(r->usage.completion_tokens == 503);
  CHECK(r->usage.total_tokens == 2598);
  CHECK(r->raw_json == original);

  for (const char* bad : {R"({"id":"x"})", R"({"content":{}})", R"({"content":[{"text":"a"}]})",
                          R"({"content":[{"type":"tool_use","id":"t"}]})",
                          R"({"content":[],"usage":{"input_tokens":null,"output_tokens":"1"}})"}) {
    INFO("body " << bad);
    auto e = parse(Protocol::Anthropic, bad);
    REQUIRE_FALSE(e.has_value());
    CHECK(e.error().code == ErrorCode::BadResponse);
  }
}

TEST_CASE("every strict prefix of a valid body is BadResponse", "[protocol][parse][truncated]") {
  for (Protocol protocol : {Protocol::OpenAI, Protocol::Anthropic}) {
    const std::string full(protocol == Protocol::OpenAI ? kZaiBody : kAnthropicBody);
    REQUIRE(parse(protocol, full).has_value());
    for (std::size_t n = 0; n < full.size(); ++n) {
      auto r = parse(protocol, full.substr(0, n));
      if (r.has_value() || r.error().code != ErrorCode::BadResponse) {
        FAIL("prefix of length " << n << " gave "
                                 << (r.has_value() ? "success" : r.error().describe()));
      }
      // The error path must survive the same bytes.
      std::string prefix = full.substr(0, n);
      const Error e = detail::map_error_response(protocol, 500, prefix, {}, {}, kNow);
      CHECK(e.code == ErrorCode::UpstreamError);
    }
  }
}

TEST_CASE("an error object inside a 200 body is the mapped error", "[protocol][parse][errors]") {
  auto r = parse(Protocol::OpenAI,
                 R"({"error":{"code":"1302","message":"High concurrency usage of this API"}})");
  REQUIRE_FALSE(r.has_value());
  CHECK(r.error().code == ErrorCode::RateLimited);
  CHECK(r.error().upstream_code == "1302");
  CHECK(r.error().message == "High concurrency usage of this API");
  CHECK(r.error().retryable());

  r = parse(Protocol::OpenAI, R"({"error":{"code":1113,"message":"Insufficient balance"}})");
  REQUIRE_FALSE(r.has_value());
  CHECK(r.error().code == ErrorCode::QuotaExceeded);
  CHECK(r.error().upstream_code == "1113");
  CHECK_FALSE(r.error().retryable());

  r = parse(Protocol::Anthropic,
            R"({"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}})");
  REQUIRE_FALSE(r.has_value());
  CHECK(r.error().code == ErrorCode::UpstreamError);
  CHECK(r.error().upstream_code == "overloaded_error");
  CHECK(r.error().message == "Overloaded");

  r = parse(Protocol::OpenAI, R"({"error":{"code":"1301","message":"unsafe"},"choices":[]})");
  REQUIRE_FALSE(r.has_value());
  CHECK(r.error().code == ErrorCode::InvalidArgument);

  // "error": null is no error.
  r = parse(Protocol::OpenAI, R"({"error":null,"choices":[{"message":{"content":"ok"}}]})");
  REQUIRE(r.has_value());
  CHECK(r->content == "ok");
}

// --- error mapping -----------------------------------------------------------------------------

TEST_CASE("HTTP status and business code mapping", "[protocol][errors]") {
  struct Row {
    int status;
    std::string body;
    ErrorCode code;
    std::string upstream_code;
    bool retryable;
  };
  const std::vector<Row> rows = {
      {400, R"({"error":{"code":"1210","message":"bad params"}})", ErrorCode::InvalidArgument,
       "1210", false},
      {413, R"({"error":{"message":"too large"}})", ErrorCode::InvalidArgument, "", false},
      {422, R"({"error":{"message":"unprocessable"}})", ErrorCode::InvalidArgument, "", false},
      {401, R"({"error":{"code":"1000","message":"Authentication failed"}})",
       ErrorCode::Unauthorized, "1000", false},
      {403, R"({"error":{"type":"permission_error","message":"no"}})", ErrorCode::Forbidden,
       "permission_error", false},
      {404, R"({"error":{"message":"not found"}})", ErrorCode::UpstreamError, "", false},
      {408, R"({"error":{"message":"timeout"}})", ErrorCode::UpstreamError, "", true},
      {409, R"({"error":{"message":"conflict"}})", ErrorCode::UpstreamError, "", true},
      {429, R"({"error":{"code":"1302","message":"High concurrency"}})", ErrorCode::RateLimited,
       "1302", true},
      {429, R"({"error":{"code":"1303","message":"High frequency"}})", ErrorCode::RateLimited,
       "1303", true},
      {429, R"({"error":{"code":"1113","message":"Insufficient balance"}})",
       ErrorCode::QuotaExceeded, "1113", false},
      {429, R"({"error":{"code":"1304","message":"daily limit"}})", ErrorCode::QuotaExceeded,
       "1304", false},
      {429, R"({"error":{"code":1308,"message":"usage limit"}})", ErrorCode::QuotaExceeded, "1308",
       false},
      {429, R"({"error":{"code":"1310","message":"weekly limit"}})", ErrorCode::QuotaExceeded,
       "1310", false},
      {400, R"({"error":{"code":"1301","message":"unsafe content"}})", ErrorCode::InvalidArgument,
       "1301", false},
      {500, R"({"error":{"code":"1261","message":"prompt too long"}})", ErrorCode::InvalidArgument,
       "1261", false},
      {429, R"({"type":"error","error":{"type":"rate_limit_error","message":"slow down"}})",
       ErrorCode::RateLimited, "rate_limit_error", true},
      {500, R"({"error":{"code":"500","message":"internal"}})", ErrorCode::UpstreamError, "500",
       true},
      {503, R"({"error":{"message":"unavailable"}})", ErrorCode::UpstreamError, "", true},
      {529, R"({"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}})",
       ErrorCode::UpstreamError, "overloaded_error", true},
      {418, R"({"message":"teapot"})", ErrorCode::UpstreamError, "", false},
      {400, R"({"error":{"code":"invalid_value","type":"invalid_request_error","message":"x"}})",
       ErrorCode::InvalidArgument, "invalid_value", false},
      {400, R"({"error":{"code":null,"type":"invalid_request_error","message":"x"}})",
       ErrorCode::InvalidArgument, "invalid_request_error", false},
      {429, R"({"code":1113,"msg":"arrears","success":false})", ErrorCode::QuotaExceeded, "1113",
       false},
  };
  for (Protocol protocol : {Protocol::OpenAI, Protocol::Anthropic}) {
    for (const Row& row : rows) {
      INFO("HTTP " << row.status << " " << row.body);
      std::string body = row.body;
      const Error e = detail::map_error_response(protocol, row.status, body, {}, {}, kNow);
      CHECK(e.code == row.code);
      CHECK(e.http_status == row.status);
      CHECK(e.upstream_code == row.upstream_code);
      CHECK(e.retryable() == row.retryable);
      CHECK_FALSE(e.message.empty());
      CHECK_FALSE(e.retry_after.has_value());
      CHECK(body == row.body);
    }
  }
  const Error e = map(Protocol::OpenAI, 429, R"({"error":{"code":"1302","message":"busy"}})");
  CHECK(e.message == "busy");
}

TEST_CASE("error bodies that are not JSON, empty or huge", "[protocol][errors]") {
  Error e =
      map(Protocol::OpenAI, 502,
          "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n\t<body>\x01\x1b[0m</body>");
  CHECK(e.code == ErrorCode::UpstreamError);
  CHECK(e.http_status == 502);
  CHECK(e.retryable());
  CHECK(e.upstream_code.empty());
  CHECK(e.message == "<html> <head><title>502 Bad Gateway</title></head> <body> [0m</body>");

  e = map(Protocol::Anthropic, 503, "");
  CHECK(e.code == ErrorCode::UpstreamError);
  CHECK(contains(e.message, "503"));

  e = map(Protocol::OpenAI, 401, "Unauthorized");
  CHECK(e.code == ErrorCode::Unauthorized);
  CHECK(e.message == "Unauthorized");

  e = map(Protocol::OpenAI, 500, std::string(100'000, 'x') + "\xFF");
  CHECK(e.message.size() < 520);
  CHECK(e.message.substr(e.message.size() - 3) == "\xE2\x80\xA6");

  // A long UTF-8 message is cut at a character boundary.
  std::string long_message;
  for (int i = 0; i < 400; ++i) long_message += "\xE4\xB8\xAD";
  e = map(Protocol::OpenAI, 400, R"({"error":{"message":")" + long_message + R"("}})");
  CHECK(e.message.size() < 520);
  std::string probe;
  CHECK(detail::append_json_string(probe, e.message));

  // Invalid UTF-8 in a plain-text body does not leak into the message.
  e = map(Protocol::OpenAI, 500, std::string("bad \xC0\xAF byte", 11));
  CHECK(e.message == "bad ?? byte");
}

TEST_CASE("key-like tokens in upstream messages are redacted", "[protocol][errors]") {
  const std::string key = "0123456789abcdef0123456789abcdef.AbCdEfGhIjKlMnOp";
  Error e =
      map(Protocol::OpenAI, 401,
          R"({"error":{"code":"1002","message":"Invalid API key: )" + key + R"x( (check it)"}})x");
  CHECK(e.code == ErrorCode::Unauthorized);
  CHECK_FALSE(contains(e.message, key));
  CHECK_FALSE(contains(e.message, "456789abcdef"));
  CHECK(contains(e.message, "Invalid API key: 0123\xE2\x80\xA6 (check it)"));

  e = map(Protocol::OpenAI, 401, "Incorrect API key provided: sk-proj-AbCdEf1234567890GhIjKlMn");
  CHECK_FALSE(contains(e.message, "1234567890GhIj"));

  // Model names, UUIDs and words stay.
  e = map(
      Protocol::OpenAI, 404,
      R"({"error":{"message":"model claude-3-5-sonnet-20241022 not found, request 123e4567-e89b-12d3-a456-426614174000"}})");
  CHECK(e.message ==
        "model claude-3-5-sonnet-20241022 not found, request "
        "123e4567-e89b-12d3-a456-426614174000");
}

TEST_CASE("map_error_response reads Retry-After", "[protocol][errors]") {
  Error e = map(Protocol::OpenAI, 429, R"({"error":{"code":"1302","message":"busy"}})", "7");
  REQUIRE(e.retry_after.has_value());
  CHECK(*e.retry_after == 7000ms);
  e = map(Protocol::Anthropic, 529, "overloaded", "7", "250.5");
  REQUIRE(e.retry_after.has_value());
  CHECK(*e.retry_after == 251ms);
}

// --- Retry-After ---------------------------------------------------------------------------------

TEST_CASE("parse_retry_after", "[protocol][retry_after]") {
  using std::chrono::milliseconds;
  const auto ra = [](std::string_view value, std::string_view ms = {}) {
    return detail::parse_retry_after(value, ms, kNow);
  };
  CHECK(ra("") == std::nullopt);
  CHECK(ra("0") == milliseconds(0));
  CHECK(ra("120") == milliseconds(120'000));
  CHECK(ra("  3 ") == milliseconds(3000));
  CHECK(ra("1.5") == milliseconds(1500));
  CHECK(ra("-5") == milliseconds(0));
  CHECK(ra("99999999999999999999999") == milliseconds(10'000'000'000'000));

  // HTTP-date, all three RFC 9110 forms; kNow is 2025-01-15 12:00:00 UTC (a Wednesday).
  CHECK(ra("Wed, 15 Jan 2025 12:00:30 GMT") == milliseconds(30'000));
  CHECK(ra("Wednesday, 15-Jan-25 12:01:00 GMT") == milliseconds(60'000));
  CHECK(ra("Wed Jan 15 12:00:05 2025") == milliseconds(5'000));
  CHECK(ra("Thu Jan  2 00:00:00 2025") == milliseconds(0));  // past -> 0
  CHECK(ra("Tue, 14 Jan 2025 12:00:00 GMT") == milliseconds(0));
  CHECK(ra("Fri, 31 Dec 9999 23:59:59 GMT").has_value());  // far future does not overflow
  // A `now` with sub-millisecond precision still waits until the date, never less.
  CHECK(detail::parse_retry_after("Wed, 15 Jan 2025 12:00:01 GMT", {}, kNow + 1500us) ==
        milliseconds(999));

  // retry-after-ms wins when valid; a bad one falls back to Retry-After.
  CHECK(ra("10", "250") == milliseconds(250));
  CHECK(ra("10", "0.4") == milliseconds(1));
  CHECK(ra("10", "-3") == milliseconds(0));
  CHECK(ra("", "1500") == milliseconds(1500));
  CHECK(ra("10", "soon") == milliseconds(10'000));
  CHECK(ra("10", "nan") == milliseconds(10'000));
  CHECK(ra("10", "inf") == milliseconds(10'000));

  // Garbage.
  for (std::string_view bad :
       {"soon", "1e3", "0x10", "10s", "--1", "1.2.3", "-", ".", "Wed, 32 Jan 2025 12:00:00 GMT",
        "Wed, 15 Foo 2025 12:00:00 GMT", "Wed, 15 Jan 2025 25:00:00 GMT",
        "Wed, 15 Jan 2025 12:00:00 PST", "Wed, 15 Jan 2025 12:00:00", "Wed, 15 Jan 2025",
        "Xyz, 15 Jan 2025 12:00:00 GMT", "Wed, 30 Feb 2025 12:00:00 GMT",
        "Wed, 15 Jan 2025 12:00:00 GMT trailing"}) {
    INFO("Retry-After: " << bad);
    CHECK(ra(bad) == std::nullopt);
  }
}
