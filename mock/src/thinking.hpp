#pragma once

// Anthropic extended thinking in the mock (docs/mock-upstream.md): the signed thinking block
// (and, on request, a redacted_thinking block) of a reply, JSON and stream, and the check of
// the blocks a request sends back, refused with 400 like Anthropic when a signature does not
// match its text.

#include <simdjson.h>

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "responses.hpp"

namespace glmproxy::mock::detail {

/// The data of the mock's redacted_thinking block (opaque, like Anthropic's).
inline constexpr std::string_view kMockRedactedData = "bW9jay1yZWRhY3RlZC10aGlua2luZw==";

/// The thinking text of an Anthropic answer: MockOptions::reasoning_text, or a fixed text when
/// the request enabled thinking without one; "" when the answer has no thinking block.
std::string_view anthropic_thinking_text(const RequestInfo& info, const MockOptions& options);

/// The signature the mock gives `thinking`: "mocksig-" + FNV-1a 64 of the text, in hex.
std::string mock_signature(std::string_view thinking);

/// Appends the reply's thinking blocks as JSON content blocks, each followed by ','.
void append_thinking_json(std::string& out, std::string_view thinking, bool redacted);

/// The SSE events (name, data) of the thinking blocks from content block `index` on (advanced
/// past them): content_block_start, thinking_delta per piece, one signature_delta,
/// content_block_stop; a redacted block whole in its content_block_start.
std::vector<std::pair<std::string, std::string>> thinking_stream_events(
    int& index, std::string_view thinking, const std::vector<std::string_view>& pieces,
    bool redacted);

/// Looks at one content block of a request message (messages[info.message_index].content[n]):
/// a thinking block whose signature is not mock_signature(thinking), or a redacted_thinking
/// block with other data, sets info.thinking_error (the first one found).
void check_thinking_block(simdjson::ondemand::object block, std::size_t n, RequestInfo& info);

}  // namespace glmproxy::mock::detail
