#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

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

/// One message of a conversation.
struct Message {
  std::string role;  ///< system | user | assistant | tool
  std::string content;
  // The {} initializers let `{"user", "text"}` compile warning-free under -Wextra.
  std::string tool_call_id{};     ///< role "tool": which call this answers
  std::string tool_calls_json{};  ///< role "assistant": the tool_calls array, raw JSON
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
  std::optional<bool> thinking;  ///< GLM "thinking": {"type": "enabled"|"disabled"}
  std::string extra_json;        ///< raw JSON object members merged into the body (tools, ...)
  std::string api_key;           ///< tenant key when a key registry is configured
  std::string request_id;        ///< sent as X-Request-ID when non-empty
  CachePolicy cache = CachePolicy::Default;
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
