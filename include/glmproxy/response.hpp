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

/// One Anthropic thinking block of a reply, kept as it came so it can be sent back: Anthropic
/// checks a thinking block's `signature`, and a tool loop with thinking on must return the
/// last assistant turn's blocks unchanged (Message::thinking_blocks).
///
/// Thread safety: thread-compatible (a plain value).
struct ThinkingBlock {
  enum class Type {
    Thinking,  ///< {"type":"thinking","thinking":..., "signature":...}
    Redacted,  ///< {"type":"redacted_thinking","data":...}: encrypted, no text to show
  };
  Type type = Type::Thinking;
  std::string thinking{};   ///< Thinking: the text (also in ChatResponse::reasoning_content)
  std::string signature{};  ///< Thinking: the signature, opaque; sent back unchanged
  std::string data{};       ///< Redacted: the encrypted data, opaque; sent back unchanged
};

/// Token counts as the upstream reported them, the same meaning for both protocols.
///
/// Every count is made safe on parsing: a negative one becomes 0, one above INT64_MAX is held
/// there; a part is never more than its whole (cached_prompt_tokens <= prompt_tokens,
/// reasoning_tokens <= completion_tokens: a larger one is cut to the whole).
///
/// prompt_tokens counts every prompt token, cached or not. OpenAI / Z.AI `prompt_tokens` already
/// does; Anthropic's `input_tokens` counts only the tokens after the last cache breakpoint, so
/// for Anthropic prompt_tokens = input_tokens + cache_creation_input_tokens +
/// cache_read_input_tokens. total_tokens is the upstream's total_tokens when it sent one, else
/// prompt_tokens + completion_tokens. See docs/tenants.md for what quotas and metrics count.
///
/// Thread safety: thread-compatible (a plain value).
struct Usage {
  std::int64_t prompt_tokens = 0, completion_tokens = 0, total_tokens = 0;
  /// Prompt tokens served from the provider's prompt cache: OpenAI / Z.AI
  /// `prompt_tokens_details.cached_tokens`, Anthropic `cache_read_input_tokens`.
  std::int64_t cached_prompt_tokens = 0;
  /// Of completion_tokens, those spent thinking: OpenAI
  /// `completion_tokens_details.reasoning_tokens` (0 when the upstream does not say; Anthropic
  /// reports none separately, its output_tokens include the thinking).
  std::int64_t reasoning_tokens = 0;
  /// Anthropic `cache_read_input_tokens` (also in cached_prompt_tokens and prompt_tokens).
  std::int64_t cache_read_input_tokens = 0;
  /// Anthropic `cache_creation_input_tokens`: prompt tokens written to the cache by this
  /// request (also in prompt_tokens).
  std::int64_t cache_creation_input_tokens = 0;
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
  /// OpenAI `message.refusal` (streamed: the `delta.refusal` pieces): the model declined, and
  /// this is its explanation; `content` is usually empty then. Anthropic sends no refusal text:
  /// its refusals show as finish_reason "refusal".
  std::string refusal;
  /// Z.AI's own `request_id` of the reply body (not the X-Request-ID header); "" when absent.
  std::string request_id;
  /// OpenAI / Z.AI `created`: Unix time in seconds the upstream gave the reply; 0 when absent.
  std::int64_t created = 0;
  /// Z.AI `web_search`: the search results of a web_search tool call, the JSON array as
  /// received (minified), "" when the reply had none. Streamed: the arrays of every chunk that
  /// carried one, joined into one array.
  std::string web_search_json;
  /// Anthropic: the reply's thinking and redacted_thinking blocks, in order, with their
  /// signature / data (streamed: assembled from thinking_delta, signature_delta and
  /// redacted_thinking blocks). Empty for OpenAI / Z.AI, whose reasoning is reasoning_content.
  std::vector<ThinkingBlock> thinking_blocks{};
};

/// One piece of a streamed reply, handed to ProxyClient::stream()'s callback as it arrives.
/// Both protocols give the same events: OpenAI `choices[].delta` chunks and Anthropic
/// `content_block_delta` / `message_delta` events become Text, Reasoning and ToolCall deltas
/// (OpenAI also Refusal deltas, Z.AI a WebSearch event), then Finish, Usage and Done.
///
/// Thread safety: thread-compatible. The callback gets a reference that is valid until it
/// returns; the strings are reused for the next event (copy what you keep).
struct StreamEvent {
  enum class Type {
    Text,       ///< `text`: the next piece of the reply
    Reasoning,  ///< `text`: the next piece of GLM reasoning_content / Anthropic thinking
    ToolCall,   ///< a tool-call fragment: `tool_index`, `tool_call_id` and `tool_name` (on
                ///< every fragment, once the upstream has sent them), `text` = the next piece
                ///< of its JSON arguments
    Finish,     ///< `text`: the finish reason as the upstream said it ("stop", "end_turn", ...)
    Usage,      ///< `usage`: token counts, cached / reasoning / cache-write details included
                ///< (OpenAI: the include_usage chunk; Anthropic: the input and cache counts of
                ///< message_start, updated by those of message_delta)
    Done,       ///< the stream ended properly (OpenAI `[DONE]`, Anthropic `message_stop`)
    Refusal,    ///< `text`: the next piece of an OpenAI `delta.refusal` (the model declined)
    WebSearch,  ///< `text`: a Z.AI chunk's `web_search` array of search results, as raw JSON
                ///< (minified), once per chunk that carries one (usually the first)
    Signature,  ///< `text`: the next piece of the signature of the Anthropic thinking block
                ///< being streamed (signature_delta); `tool_index` = its block's index
    RedactedThinking,  ///< `text`: the data of an Anthropic redacted_thinking block (whole);
                       ///< `tool_index` = its block's index, as for Signature
  };
  Type type = Type::Text;
  std::string text;
  int tool_index = 0;
  std::string tool_call_id, tool_name;
  Usage usage;
};

/// The name of a StreamEvent::Type ("text", "reasoning", "tool_call", "finish", "usage",
/// "done", "refusal", "web_search", "signature", "redacted_thinking").
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
