#pragma once

// What the mock answers, before faults and framing: the bodies of the normal OpenAI and
// Anthropic responses, as one JSON document or a list of SSE events.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "glmproxy/mock/mock_upstream.hpp"

namespace glmproxy::mock::detail {

enum class Api { Chat, Messages, Embeddings, Models, Unknown };

/// What the mock needs to know of a request body.
struct RequestInfo {
  Api api = Api::Unknown;
  std::string model;
  bool stream = false;
  bool include_usage = false;  ///< OpenAI stream_options.include_usage
  bool thinking_disabled = false;
  // Markers in a message's text ask for reply shapes of issue 16 (docs/mock-upstream.md):
  bool usage_details = false;  ///< "[mock:usage_details]": cached / reasoning / cache counts
  bool refusal = false;        ///< "[mock:refusal]": a refusal instead of the reply text
  bool web_search = false;     ///< "[mock:web_search]": Z.AI web_search results (OpenAI API)
  // Anthropic extended thinking (thinking.hpp):
  bool thinking_enabled = false;   ///< "thinking": {"type": "enabled"}
  bool redacted_thinking = false;  ///< "[mock:redacted_thinking]": a redacted_thinking block
  std::size_t message_index = 0;   ///< the message being parsed
  std::string thinking_error;      ///< a thinking block sent back was altered: 400 with this
  /// An assistant tool_use turn without its thinking block: 400 with this when thinking is on.
  std::string tool_use_order_error;
  // Tool calls and content parts (tools.hpp):
  struct Tool {
    std::string name;
    std::string arguments;  ///< the mock's arguments for its schema, a JSON object
  };
  std::vector<Tool> tools;
  bool tool_choice_none = false;
  std::string tool_choice_name;      ///< the tool tool_choice names, "" when it names none
  bool last_is_tool_result = false;  ///< the last message is a tool result
  std::string tool_result_text;      ///< ... and this its content
  std::string media_suffix;          ///< " [image: ...]" ... of the user messages' parts
  std::int64_t prompt_chars = 0;
  std::vector<std::string> embedding_inputs;
};

/// A response before framing. `events` holds the SSE events when `sse` is set, else the body.
struct Planned {
  int status = 200;
  std::vector<std::pair<std::string, std::string>> headers;
  bool sse = false;
  std::vector<std::string> events;  // SSE: one complete event each ("data: ...\n\n")
  std::string body;                 // JSON or other single body
};

/// Parses the request JSON into `info`; returns an error text, or "" on success.
std::string parse_request(std::string& body, RequestInfo& info);

/// The normal answer for `info`; `counter` makes ids unique.
Planned plan_response(const RequestInfo& info, const MockOptions& options, const Fault* fault,
                      std::uint64_t counter);

/// An error body in the style of the API (`Api::Messages`: Anthropic, else OpenAI).
std::string error_body(Api api, int status, std::string_view message);
/// The error event sent inside a 200 stream when no custom one is scripted.
std::string stream_error_event(Api api, const std::string& custom_json);

std::string_view reason_phrase(int status) noexcept;
void append_json_string(std::string& out, std::string_view s);

/// Parses the control endpoint's JSON array of faults; returns an error text, or "".
std::string parse_faults(std::string& body, std::vector<Fault>& out);
std::string stats_json(const MockStats& stats);

}  // namespace glmproxy::mock::detail
