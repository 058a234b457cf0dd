#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "glmproxy/export.hpp"

namespace glmproxy {

struct ToolCall {
  std::string id, name, arguments_json;
};

struct Usage {
  std::int64_t prompt_tokens = 0, completion_tokens = 0, total_tokens = 0;
};

/// A parsed chat reply, the same shape for both protocols.
///
/// Thread safety: thread-compatible (a plain value).
struct ChatResponse {
  std::string id, model, content, finish_reason;  ///< finish_reason as the upstream said it
                                                  ///< ("stop", "length", "end_turn", ...)
  std::string reasoning_content;                  ///< GLM reasoning / Anthropic thinking text
  std::vector<ToolCall> tool_calls;
  Usage usage;
  int http_status = 0;
  bool from_cache = false;
  std::string raw_json;  ///< the upstream body as received
  int attempts = 0;      ///< upstream attempts this answer took (1 = no retry)
};

/// One piece of a streamed reply, handed to ProxyClient::stream()'s callback as it arrives.
/// Both protocols give the same events: OpenAI `choices[].delta` chunks and Anthropic
/// `content_block_delta` / `message_delta` events become Text, Reasoning and ToolCall deltas,
/// then Finish, Usage and Done.
///
/// Thread safety: thread-compatible. The callback gets a reference that is valid until it
/// returns; the strings are reused for the next event (copy what you keep).
struct StreamEvent {
  enum class Type {
    Text,       ///< `text`: the next piece of the reply
    Reasoning,  ///< `text`: the next piece of GLM reasoning_content / Anthropic thinking
    ToolCall,   ///< a tool-call fragment: `tool_index`, `tool_call_id` and `tool_name` (on
                ///< the call's first fragment), `text` = the next piece of its JSON arguments
    Finish,     ///< `text`: the finish reason as the upstream said it ("stop", "end_turn", ...)
    Usage,      ///< `usage`: token counts (OpenAI: the include_usage chunk; Anthropic: the
                ///< input tokens of message_start plus the output tokens of message_delta)
    Done,       ///< the stream ended properly (OpenAI `[DONE]`, Anthropic `message_stop`)
  };
  Type type = Type::Text;
  std::string text;
  int tool_index = 0;
  std::string tool_call_id, tool_name;
  Usage usage;
};

/// The name of a StreamEvent::Type ("text", "reasoning", "tool_call", "finish", "usage",
/// "done").
GLMPROXY_API std::string_view to_string(StreamEvent::Type type) noexcept;

/// The answer to ProxyClient::embed().
struct EmbeddingResponse {
  std::string model;
  std::vector<std::vector<float>> embeddings;  ///< one per input, in input order
  /// Tokens of this request. When it was merged with others into one upstream call, the call's
  /// prompt tokens are shared out in proportion to each request's input bytes.
  Usage usage;
  bool from_cache = false;
  int attempts = 0;         ///< upstream attempts of the call that answered it
  int merged_requests = 1;  ///< requests answered by that one upstream call
};

/// The answer to ProxyClient::send().
struct HttpResponse {
  int status = 0;
  std::vector<std::pair<std::string, std::string>> headers;  ///< names lower-cased
  std::string body;
};

}  // namespace glmproxy
