#pragma once

// Tool-call turns and content parts in the mock (docs/mock-upstream.md): the tools and
// tool_choice of a request, what its messages say (a tool result last, image / video / file
// parts, an assistant tool_use turn without its thinking block), and the one tool call or the
// text the mock answers with.

#include <simdjson.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "responses.hpp"

namespace glmproxy::mock::detail {

/// What one request message holds, gathered while its content is read (its role may come
/// after its content in the JSON).
struct MessageScan {
  std::string role;
  std::string text;              ///< its text (a string content, or its text blocks joined)
  std::string first_block_type;  ///< the type of content[0] when content is an array
  bool has_tool_use = false;     ///< Anthropic tool_use block
  bool has_tool_result = false;  ///< Anthropic tool_result block
  std::string tool_result_text;  ///< the last tool_result block's content, text blocks joined
  std::string media;             ///< " [image: ...]" etc. of its parts, in order
};

/// Reads `tools` (OpenAI tools[].function.parameters, Anthropic tools[].input_schema).
void parse_tools(simdjson::ondemand::value tools, RequestInfo& info);
/// Reads `tool_choice`: "none" / {"type":"none"}, or the tool it names.
void parse_tool_choice(simdjson::ondemand::value choice, RequestInfo& info);

/// Notes one content block of a message (`type` its "type"): a tool_use, a tool_result, or an
/// image / video / file part. Returns the characters it adds to the prompt count.
std::int64_t scan_block(simdjson::ondemand::object block, std::string_view type, MessageScan& scan);
/// Applies a message read whole (messages[info.message_index]) to `info`.
void finish_message(const MessageScan& scan, RequestInfo& info);

/// The one tool call the mock answers `info` with, if it answers with one.
struct ToolCallReply {
  std::string id, name, arguments;  ///< arguments: a JSON object
};
std::optional<ToolCallReply> tool_call_reply(const RequestInfo& info, std::uint64_t counter);

/// The text of a text answer: "Tool result: ..." after a tool result, else
/// MockOptions::reply_text; then the echo of the request's media parts.
std::string reply_text(const RequestInfo& info, const MockOptions& options);

}  // namespace glmproxy::mock::detail
