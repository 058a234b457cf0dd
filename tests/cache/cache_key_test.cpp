// Cache keys: every field that changes an answer changes the key; spelling that does not change
// it (extra_json member order, whitespace, 1.0 vs 1) does not.

#include "cache/cache_key.hpp"

#include <catch2/catch.hpp>
#include <functional>
#include <string>
#include <utility>
#include <vector>

using glmproxy::ChatRequest;
using glmproxy::EmbeddingRequest;
using glmproxy::Protocol;
using glmproxy::detail::CacheKey;
using glmproxy::detail::canonical_json;
using glmproxy::detail::chat_cache_key;
using glmproxy::detail::embedding_cache_key;

namespace {

ChatRequest base_request() {
  ChatRequest r;
  r.messages = {{"system", "Be brief."}, {"user", "Hello"}};
  r.temperature = 0.5;
  r.top_p = 0.9;
  r.max_tokens = 100;
  r.stop = {"END"};
  r.seed = 7;
  r.thinking = true;
  r.system = "You are a test.";
  r.extra_json = R"({"tools":[{"type":"function","function":{"name":"f"}}],"user":"u1"})";
  r.messages[1].parts = {glmproxy::ContentPart::image_url("https://x/a.png", "high")};
  r.messages[1].tool_calls = {{"c0", "f", "{}"}};
  r.tools = {{"g", "d", R"({"type":"object"})"}};
  r.tool_choice = glmproxy::ToolChoice::function("g");
  r.response_format = glmproxy::ResponseFormat::json_schema("s", R"({"type":"string"})");
  return r;
}

CacheKey key_of(const ChatRequest& r, std::string_view url = "https://h/api/paas/v4",
                std::string_view model = "glm-4.7", bool stream = false,
                std::string_view tenant = "") {
  return chat_cache_key(r, url, model, stream, tenant);
}

}  // namespace

TEST_CASE("cache key: the same request gives the same key", "[cache]") {
  CHECK(key_of(base_request()) == key_of(base_request()));
}

TEST_CASE("cache key: changing any one field changes the key", "[cache]") {
  const CacheKey base = key_of(base_request());
  const std::vector<std::pair<const char*, std::function<void(ChatRequest&)>>> changes = {
      {"protocol", [](ChatRequest& r) { r.protocol = Protocol::Anthropic; }},
      {"message content", [](ChatRequest& r) { r.messages[1].content = "Hello!"; }},
      {"message role", [](ChatRequest& r) { r.messages[0].role = "user"; }},
      {"message order", [](ChatRequest& r) { std::swap(r.messages[0], r.messages[1]); }},
      {"one more message",
       [](ChatRequest& r) {
         r.messages.push_back({"user", ""});
       }},
      {"tool_call_id", [](ChatRequest& r) { r.messages[1].tool_call_id = "c1"; }},
      {"tool_calls_json", [](ChatRequest& r) { r.messages[1].tool_calls_json = "[]"; }},
      {"system", [](ChatRequest& r) { r.system = "You are another test."; }},
      {"no system", [](ChatRequest& r) { r.system.reset(); }},
      {"temperature", [](ChatRequest& r) { r.temperature = 0.51; }},
      {"no temperature", [](ChatRequest& r) { r.temperature.reset(); }},
      {"top_p", [](ChatRequest& r) { r.top_p = 0.8; }},
      {"max_tokens", [](ChatRequest& r) { r.max_tokens = 101; }},
      {"stop", [](ChatRequest& r) { r.stop.push_back("STOP"); }},
      {"seed", [](ChatRequest& r) { r.seed = 8; }},
      {"thinking", [](ChatRequest& r) { r.thinking = false; }},
      {"extra_json value", [](ChatRequest& r) { r.extra_json = R"({"tools":[],"user":"u1"})"; }},
      {"extra_json member", [](ChatRequest& r) { r.extra_json.clear(); }},
      {"a content part",
       [](ChatRequest& r) {
         r.messages[1].parts.push_back(glmproxy::ContentPart::image_url("https://x/b.png"));
       }},
      {"content part url", [](ChatRequest& r) { r.messages[1].parts[0].url = "https://x/b.png"; }},
      {"content part detail", [](ChatRequest& r) { r.messages[1].parts[0].detail = "low"; }},
      {"content part type",
       [](ChatRequest& r) { r.messages[1].parts[0].type = glmproxy::ContentPart::Type::FileUrl; }},
      {"content part text", [](ChatRequest& r) { r.messages[1].parts[0].text = "t"; }},
      {"content part data", [](ChatRequest& r) { r.messages[1].parts[0].data = "AAAA"; }},
      {"content part media type",
       [](ChatRequest& r) { r.messages[1].parts[0].media_type = "image/gif"; }},
      {"one more typed tool call",
       [](ChatRequest& r) {
         r.messages[1].tool_calls.push_back({"c1", "f", "{}"});
       }},
      {"typed tool call id", [](ChatRequest& r) { r.messages[1].tool_calls[0].id = "c9"; }},
      {"typed tool call name", [](ChatRequest& r) { r.messages[1].tool_calls[0].name = "g"; }},
      {"typed tool call arguments",
       [](ChatRequest& r) { r.messages[1].tool_calls[0].arguments_json = R"({"a":1})"; }},
      {"one more tool", [](ChatRequest& r) { r.tools.push_back({"f"}); }},
      {"tool name", [](ChatRequest& r) { r.tools[0].name = "h"; }},
      {"tool description", [](ChatRequest& r) { r.tools[0].description = "e"; }},
      {"tool parameters",
       [](ChatRequest& r) { r.tools[0].parameters_json = R"({"type":"null"})"; }},
      {"tool strict", [](ChatRequest& r) { r.tools[0].strict = true; }},
      {"tool_choice type",
       [](ChatRequest& r) { r.tool_choice->type = glmproxy::ToolChoice::Type::Auto; }},
      {"tool_choice name", [](ChatRequest& r) { r.tool_choice->name = "h"; }},
      {"no tool_choice", [](ChatRequest& r) { r.tool_choice.reset(); }},
      {"response_format type",
       [](ChatRequest& r) {
         r.response_format->type = glmproxy::ResponseFormat::Type::JsonObject;
       }},
      {"response_format name", [](ChatRequest& r) { r.response_format->name = "t"; }},
      {"response_format description", [](ChatRequest& r) { r.response_format->description = "d"; }},
      {"response_format schema",
       [](ChatRequest& r) { r.response_format->schema_json = R"({"type":"number"})"; }},
      {"response_format strict", [](ChatRequest& r) { r.response_format->strict = false; }},
      {"no response_format", [](ChatRequest& r) { r.response_format.reset(); }},
      {"do_sample", [](ChatRequest& r) { r.do_sample = false; }},
      {"do_sample true", [](ChatRequest& r) { r.do_sample = true; }},
      {"tool_stream", [](ChatRequest& r) { r.tool_stream = true; }},
      {"content split differently",
       [](ChatRequest& r) {
         r.messages[0].content = "Be brief.Hello";
         r.messages[1].content = "";
       }},
  };
  for (const auto& [what, change] : changes) {
    ChatRequest r = base_request();
    change(r);
    INFO(what);
    CHECK_FALSE(key_of(r) == base);
  }
  INFO("base URL, model, stream and tenant");
  CHECK_FALSE(key_of(base_request(), "https://other/api/paas/v4") == base);
  CHECK_FALSE(key_of(base_request(), "https://h/api/paas/v4", "glm-4.6") == base);
  CHECK_FALSE(key_of(base_request(), "https://h/api/paas/v4", "glm-4.7", true) == base);
  CHECK_FALSE(key_of(base_request(), "https://h/api/paas/v4", "glm-4.7", false, "tenant-b") ==
              base);
}

TEST_CASE("cache key: user_id, body_request_id and request_id name the call, not the question",
          "[cache]") {
  const CacheKey base = key_of(base_request());
  ChatRequest r = base_request();
  r.user_id = "end-user-1234";
  r.body_request_id = "req-1";
  r.request_id = "hdr-1";
  CHECK(key_of(r) == base);
}

TEST_CASE("cache key: extra_json member order, whitespace and number spelling do not matter",
          "[cache]") {
  ChatRequest a = base_request();
  ChatRequest b = base_request();
  b.extra_json =
      R"( { "user" : "u1", "tools" : [ { "function" : {"name":"f"}, "type":"function" } ] } )";
  CHECK(key_of(a) == key_of(b));
  a.extra_json = R"({"top_k": 1.0, "x": {"b": 2, "a": 1}})";
  b.extra_json = R"({"x": {"a": 1, "b": 2}, "top_k": 1})";
  CHECK(key_of(a) == key_of(b));
  // Array order does matter.
  b.extra_json = R"({"x": {"a": 1, "b": 2}, "top_k": 1, "stop": [1, 2]})";
  a.extra_json = R"({"x": {"a": 1, "b": 2}, "top_k": 1, "stop": [2, 1]})";
  CHECK_FALSE(key_of(a) == key_of(b));
}

TEST_CASE("cache key: tool parameters, arguments and schemas are compared as JSON", "[cache]") {
  ChatRequest spaced = base_request();
  spaced.tools[0].parameters_json = R"({ "type" : "object" })";
  spaced.response_format->schema_json = R"( {"type": "string"} )";
  spaced.messages[1].tool_calls = {{"c1", "f", R"({"b": 1.0, "a": 2})"}};
  ChatRequest tight = base_request();
  tight.messages[1].tool_calls = {{"c1", "f", R"({"a":2,"b":1})"}};
  CHECK(key_of(spaced) == key_of(tight));
}

TEST_CASE("cache key: canonical_json sorts members and keeps the last duplicate", "[cache]") {
  CHECK(canonical_json(R"({"b":1,"a":[true,null,"x\n"],"b":2})") ==
        R"({"a":[true,null,"x\n"],"b":2})");
  CHECK(canonical_json("") == "");
  CHECK(canonical_json("not json") == "not json");
}

TEST_CASE("cache key: embeddings depend on inputs, their order, model and dimensions", "[cache]") {
  EmbeddingRequest r;
  r.input = {"a", "b"};
  const CacheKey base = embedding_cache_key(r, "u", "embedding-3", "");
  EmbeddingRequest swapped = r;
  swapped.input = {"b", "a"};
  CHECK_FALSE(embedding_cache_key(swapped, "u", "embedding-3", "") == base);
  CHECK_FALSE(embedding_cache_key(r, "u", "embedding-2", "") == base);
  EmbeddingRequest dims = r;
  dims.dimensions = 256;
  CHECK_FALSE(embedding_cache_key(dims, "u", "embedding-3", "") == base);
  CHECK_FALSE(embedding_cache_key(r, "u", "embedding-3", "t") == base);
  CHECK(embedding_cache_key(r, "u", "embedding-3", "") == base);
  // Never the same as a chat key over similar text.
  ChatRequest chat;
  chat.messages = {{"user", "a"}};
  CHECK_FALSE(chat_cache_key(chat, "u", "embedding-3", false, "") == base);
}

TEST_CASE("cache key: embeddings depend on extra_json and the base URL, not on their spelling",
          "[cache]") {
  EmbeddingRequest r;
  r.input = {"a"};
  r.extra_json = R"({"encoding_format":"float","user":"u1"})";
  const CacheKey base = embedding_cache_key(r, "u", "embedding-3", "");
  const std::vector<std::pair<const char*, std::string>> changes = {
      {"another member value", R"({"encoding_format":"float","user":"u2"})"},
      {"one member fewer", R"({"encoding_format":"float"})"},
      {"one member more", R"({"encoding_format":"float","user":"u1","x":1})"},
      {"empty object", "{}"},
      {"none", ""},
  };
  std::vector<CacheKey> seen = {base};
  for (const auto& [what, extra] : changes) {
    INFO(what);
    EmbeddingRequest changed = r;
    changed.extra_json = extra;
    const CacheKey k = embedding_cache_key(changed, "u", "embedding-3", "");
    for (const CacheKey& other : seen) CHECK_FALSE(k == other);
    seen.push_back(k);
  }
  EmbeddingRequest respelled = r;
  respelled.extra_json = R"( { "user" : "u1" , "encoding_format" : "float" } )";
  CHECK(embedding_cache_key(respelled, "u", "embedding-3", "") == base);
  CHECK_FALSE(embedding_cache_key(r, "https://other/v4", "embedding-3", "") == base);
}

TEST_CASE("cache key: the thinking budget, reasoning sent back and thinking blocks change it",
          "[cache]") {
  using glmproxy::ThinkingBlock;
  const auto with_blocks = [] {
    ChatRequest r = base_request();
    r.protocol = Protocol::Anthropic;
    r.messages.push_back({"assistant", "Let me look."});
    r.messages.back().reasoning_content = "The user wants weather.";
    ThinkingBlock thinking;
    thinking.thinking = "The user wants weather.";
    thinking.signature = "sig-1";
    ThinkingBlock redacted;
    redacted.type = ThinkingBlock::Type::Redacted;
    redacted.data = "opaque";
    r.messages.back().thinking_blocks = {thinking, redacted};
    return r;
  };
  const CacheKey base = key_of(with_blocks());
  CHECK(key_of(with_blocks()) == base);
  const std::vector<std::pair<const char*, std::function<void(ChatRequest&)>>> changes = {
      {"thinking_budget_tokens", [](ChatRequest& r) { r.thinking_budget_tokens = 2048; }},
      {"reasoning_content", [](ChatRequest& r) { r.messages.back().reasoning_content += "!"; }},
      {"no thinking blocks", [](ChatRequest& r) { r.messages.back().thinking_blocks.clear(); }},
      {"thinking block order",
       [](ChatRequest& r) {
         auto& b = r.messages.back().thinking_blocks;
         std::swap(b[0], b[1]);
       }},
      {"thinking block type",
       [](ChatRequest& r) {
         r.messages.back().thinking_blocks[1].type = ThinkingBlock::Type::Thinking;
       }},
      {"thinking text",
       [](ChatRequest& r) { r.messages.back().thinking_blocks[0].thinking = "x"; }},
      {"signature",
       [](ChatRequest& r) { r.messages.back().thinking_blocks[0].signature = "sig-2"; }},
      {"redacted data",
       [](ChatRequest& r) { r.messages.back().thinking_blocks[1].data = "other"; }},
  };
  for (const auto& [what, change] : changes) {
    ChatRequest r = with_blocks();
    change(r);
    INFO(what);
    CHECK_FALSE(key_of(r) == base);
  }
  // Two budgets differ from each other, not only from none.
  ChatRequest a = with_blocks(), b = with_blocks();
  a.thinking_budget_tokens = 2048;
  b.thinking_budget_tokens = 2049;
  CHECK_FALSE(key_of(a) == key_of(b));
}
