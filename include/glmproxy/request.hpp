#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "glmproxy/response.hpp"  // ToolCall, shared by replies and assistant turns

namespace glmproxy {

/// Which wire format a request is written in: OpenAI chat/completions (Z.AI's
/// `/api/paas/v4`) or Anthropic `/v1/messages` (Z.AI's `/api/anthropic`).
enum class Protocol { OpenAI, Anthropic };

/// How one request uses the response cache (CACHE_ENABLED switches the cache on for a client)
/// and whether it may share an identical request's upstream call.
enum class CachePolicy {
  Default,  ///< read and write the cache when it is enabled; join an identical request in flight
  Bypass,   ///< neither read nor write the cache, join nothing: always its own upstream call
  Refresh,  ///< skip the lookup, send its own upstream call, store the answer (cache enabled)
};

/// One typed piece of a message's content: text, or an image, video or file for vision models
/// (Z.AI GLM-4.5V / GLM-4.6V, OpenAI, Claude). docs/protocols.md says how each is written.
///
/// Thread safety: thread-compatible (a plain value).
/// Example:
///   glmproxy::Message m{"user", "What is in this picture?"};
///   m.parts.push_back(glmproxy::ContentPart::image_url("https://example.com/cat.png", "low"));
struct ContentPart {
  enum class Type {
    Text,         ///< `text`
    ImageUrl,     ///< `url` (http(s) or a data: URL), optional `detail`
    ImageBase64,  ///< `data` (base64, no "data:" prefix) of type `media_type`, optional `detail`
    VideoUrl,     ///< `url`; Z.AI vision models only (Anthropic: InvalidArgument)
    FileUrl,      ///< `url` of a document; Z.AI vision models (Anthropic: a "document" block)
  };
  Type type = Type::Text;
  std::string text{};        ///< Text
  std::string url{};         ///< ImageUrl, VideoUrl, FileUrl
  std::string data{};        ///< ImageBase64: the base64 bytes
  std::string media_type{};  ///< ImageBase64: e.g. "image/png" (required)
  std::string detail{};      ///< images, OpenAI/Z.AI: "auto" | "low" | "high"; empty: not sent

  static ContentPart from_text(std::string text) {
    ContentPart p;
    p.text = std::move(text);
    return p;
  }
  static ContentPart image_url(std::string url, std::string detail = {}) {
    ContentPart p;
    p.type = Type::ImageUrl;
    p.url = std::move(url);
    p.detail = std::move(detail);
    return p;
  }
  static ContentPart image_base64(std::string media_type, std::string data,
                                  std::string detail = {}) {
    ContentPart p;
    p.type = Type::ImageBase64;
    p.media_type = std::move(media_type);
    p.data = std::move(data);
    p.detail = std::move(detail);
    return p;
  }
  static ContentPart video_url(std::string url) {
    ContentPart p;
    p.type = Type::VideoUrl;
    p.url = std::move(url);
    return p;
  }
  static ContentPart file_url(std::string url) {
    ContentPart p;
    p.type = Type::FileUrl;
    p.url = std::move(url);
    return p;
  }
};

/// One message of a conversation.
///
/// The content is `content` (plain text) unless `parts` is non-empty: then it is sent as a list
/// of typed parts, with a non-empty `content` as the first text part. Images, videos and files
/// are only accepted in user messages; other roles take text parts.
struct Message {
  std::string role;  ///< system | user | assistant | tool
  std::string content;
  // The {} initializers let `{"user", "text"}` compile warning-free under -Wextra.
  std::string tool_call_id{};     ///< role "tool": which call this answers
  std::string tool_calls_json{};  ///< role "assistant": the tool_calls array, raw JSON
  std::vector<ContentPart> parts{};
  /// role "assistant": the calls it made, typed (the reply's ChatResponse::tool_calls can be
  /// copied here). Use this or tool_calls_json, not both. OpenAI sends arguments_json as the
  /// string it is ("" as "{}"); Anthropic needs it to be a JSON object ("" is {}).
  std::vector<ToolCall> tool_calls{};
  /// role "assistant", OpenAI protocol (GLM): the turn's reasoning, sent back as
  /// `reasoning_content` so a tool loop with thinking keeps its chain of thought. Anthropic:
  /// not sent (an unsigned thinking block is refused there; it takes thinking_blocks).
  std::string reasoning_content{};
  /// role "assistant", Anthropic: the turn's thinking / redacted_thinking blocks as the reply
  /// gave them (ChatResponse::thinking_blocks), written first in its content, signature and
  /// data unchanged. OpenAI protocol: not sent.
  std::vector<ThinkingBlock> thinking_blocks{};

  /// The assistant turn of `reply`, ready to send back in the next request of a tool loop:
  /// its content, tool calls, reasoning_content and thinking blocks (the refusal is not part
  /// of the turn).
  static Message assistant(const ChatResponse& reply) {
    Message m{"assistant", reply.content};
    m.tool_calls = reply.tool_calls;
    m.reasoning_content = reply.reasoning_content;
    m.thinking_blocks = reply.thinking_blocks;
    return m;
  }
  /// A role "tool" message answering the tool call `tool_call_id` with `result` (OpenAI role
  /// "tool"; Anthropic a user turn with a tool_result block).
  static Message tool_result(std::string tool_call_id, std::string result) {
    Message m{"tool", std::move(result)};
    m.tool_call_id = std::move(tool_call_id);
    return m;
  }
};

/// A function the model may call: OpenAI `tools[].function`, Anthropic `tools[]` with
/// `input_schema`.
///
/// Thread safety: thread-compatible (a plain value).
/// Example:
///   request.tools.push_back({"get_weather", "Current weather of a city",
///                            R"({"type":"object","properties":{"city":{"type":"string"}},)"
///                            R"("required":["city"]})"});
struct Tool {
  std::string name;
  std::string description{};  ///< empty: not sent
  /// The JSON Schema of the arguments, a raw JSON object (checked before sending). Empty: OpenAI
  /// sends no "parameters", Anthropic sends {"type":"object"} (input_schema is required there).
  std::string parameters_json{};
  std::optional<bool> strict{};  ///< OpenAI function.strict; not sent to Anthropic
};

/// Whether and which tool the model must call.
/// OpenAI: "auto" | "none" | "required" | {"type":"function","function":{"name":...}}.
/// Anthropic: {"type":"auto"} | {"type":"none"} | {"type":"any"} | {"type":"tool","name":...}.
/// (Z.AI documents only "auto" for its OpenAI endpoint; glmproxy sends what is asked.)
struct ToolChoice {
  enum class Type {
    Auto,      ///< the model decides
    None,      ///< no tool call
    Required,  ///< some tool call (Anthropic "any")
    Function,  ///< the tool called `name`
  };
  Type type = Type::Auto;
  std::string name{};  ///< Function

  static ToolChoice function(std::string name) {
    ToolChoice c;
    c.type = Type::Function;
    c.name = std::move(name);
    return c;
  }
};

/// The shape of the reply (OpenAI `response_format`). Anthropic has no such field: Text sends
/// nothing there, JsonObject and JsonSchema are InvalidArgument (use a tool whose parameters are
/// the schema, with ToolChoice::function, instead).
struct ResponseFormat {
  enum class Type {
    Text,        ///< {"type":"text"}
    JsonObject,  ///< {"type":"json_object"}
    JsonSchema,  ///< {"type":"json_schema","json_schema":{name, description?, schema, strict?}}
  };
  Type type = Type::Text;
  std::string name{};         ///< JsonSchema: required
  std::string description{};  ///< JsonSchema: empty: not sent
  std::string schema_json{};  ///< JsonSchema: the schema, a raw JSON object (checked)
  std::optional<bool> strict{};

  static ResponseFormat json_schema(std::string name, std::string schema_json,
                                    std::optional<bool> strict = std::nullopt) {
    ResponseFormat f;
    f.type = Type::JsonSchema;
    f.name = std::move(name);
    f.schema_json = std::move(schema_json);
    f.strict = strict;
    return f;
  }
};

/// A chat request, written as OpenAI or Anthropic JSON by the library.
///
/// Thread safety: thread-compatible (a plain value).
/// Example:
///   glmproxy::ChatRequest request;
///   request.messages = {{"user", "Say hello."}};
///   request.max_tokens = 100;
struct ChatRequest {
  Protocol protocol = Protocol::OpenAI;
  std::string model;  ///< empty: Config default model
  std::vector<Message> messages;
  std::optional<std::string> system;  ///< OpenAI: sent as a leading system message
  std::optional<double> temperature, top_p;
  std::optional<int> max_tokens;  ///< Anthropic requires one; default 4096 when unset there
  std::vector<std::string> stop;
  std::optional<std::int64_t> seed;
  std::optional<bool> thinking;             ///< GLM "thinking": {"type": "enabled"|"disabled"}
  std::vector<Tool> tools{};                ///< sent as "tools" when non-empty
  std::optional<ToolChoice> tool_choice{};  ///< sent as "tool_choice" when set
  std::optional<ResponseFormat> response_format{};  ///< sent as "response_format" (OpenAI) when set
  std::string extra_json;  ///< raw JSON object members merged into the body, last; a member
                           ///< named like a typed field replaces it
  std::string api_key;     ///< tenant key when a key registry is configured
  std::string request_id;  ///< sent as X-Request-ID when non-empty
  CachePolicy cache = CachePolicy::Default;
  /// Anthropic `thinking.budget_tokens`: at least 1024 and below max_tokens, else
  /// InvalidArgument. Unset: max_tokens / 2, at least 1024 (thinking on with max_tokens <= 1024
  /// is InvalidArgument: no valid budget exists). Set while `thinking` is unset turns thinking
  /// on; set with `thinking` false is InvalidArgument. OpenAI protocol: not sent (GLM has no
  /// budget).
  std::optional<int> thinking_budget_tokens{};
  /// Z.AI `do_sample` (OpenAI protocol; Anthropic: not sent). false: greedy decoding,
  /// temperature and top_p have no effect. For a GLM model, temperature <= 0 with do_sample
  /// unset is written as Z.AI's SDK writes it ("do_sample":false, "temperature":0.01), and with
  /// do_sample true it is InvalidArgument (Z.AI refuses it). docs/protocols.md.
  std::optional<bool> do_sample{};
  /// Z.AI `user_id`, the end user (6 to 128 characters there), on the OpenAI protocol;
  /// Anthropic `metadata.user_id`. Empty: not sent.
  std::string user_id{};
  /// Z.AI `tool_stream` (OpenAI protocol, GLM-4.6 and later): stream tool-call arguments as
  /// they are made. Anthropic: not sent (its tool input always streams).
  std::optional<bool> tool_stream{};
  /// Z.AI's own `request_id` body field (OpenAI protocol), echoed in the reply's request_id.
  /// Empty: not sent. `request_id` above is the X-Request-ID header, sent as before.
  std::string body_request_id{};
};

/// An embeddings request (OpenAI POST /embeddings; Z.AI `embedding-3`). With BATCHING_ENABLED,
/// requests for the same model arriving in one batch window are merged into one upstream call
/// and the vectors split back in order.
///
/// Thread safety: thread-compatible (a plain value).
/// Example:
///   glmproxy::EmbeddingRequest request;
///   request.input = {"first text", "second text"};
///   auto vectors = client->embed(request);   // vectors->embeddings[1] is "second text"'s
struct EmbeddingRequest {
  std::string model;               ///< empty: Config's default embedding model
  std::vector<std::string> input;  ///< one vector per string, in order
  std::optional<int> dimensions;   ///< sent as "dimensions" when set
  std::string extra_json;          ///< raw JSON object members merged into the body
  std::string api_key;             ///< tenant key when a key registry is configured
  CachePolicy cache = CachePolicy::Default;
  std::string request_id;  ///< names the request in profiles (PROFILING_ENABLED); not sent
                           ///< upstream, since batching may merge it with others
};

/// A raw HTTP request for ProxyClient::send(): the path is joined to the protocol's base URL.
struct HttpRequest {
  std::string method = "GET";
  std::string path;  ///< e.g. "models" or "/models": appended to the base URL's path
  Protocol protocol = Protocol::OpenAI;  ///< which base URL and auth header to use
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
};

}  // namespace glmproxy
