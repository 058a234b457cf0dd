#pragma once

// The token counts an upstream's usage object carries, before they become a Usage (no simdjson
// here: chat_stream.hpp, which the client layer includes, keeps one).

#include <cstdint>
#include <optional>

#include "glmproxy/response.hpp"

namespace glmproxy::detail {

/// The counts an OpenAI / Z.AI `usage` object may carry (prompt_tokens, completion_tokens,
/// total_tokens, prompt_tokens_details.cached_tokens, completion_tokens_details.reasoning_tokens).
struct OpenAiUsageCounts {
  std::optional<std::int64_t> prompt, completion, total, cached, reasoning;
};
/// The counts of an Anthropic `usage` object (input_tokens, output_tokens,
/// cache_creation_input_tokens, cache_read_input_tokens). A stream merges message_start's with
/// message_delta's: a count present in the later one replaces the earlier.
struct AnthropicUsageCounts {
  std::optional<std::int64_t> input, output, cache_creation, cache_read;
  void merge(const AnthropicUsageCounts& later) noexcept;
};
/// Usage from those counts, made safe (response.hpp's Usage says how): absent counts are 0,
/// parts are cut to their whole, Anthropic's prompt_tokens sums input and both cache counts
/// (saturating).
Usage make_usage(const OpenAiUsageCounts& counts) noexcept;
Usage make_usage(const AnthropicUsageCounts& counts) noexcept;

}  // namespace glmproxy::detail
