// Anthropic extended thinking (https://docs.anthropic.com/en/docs/build-with-claude/
// extended-thinking): the budget rule of the request's "thinking" member, the thinking /
// redacted_thinking blocks an assistant turn sends back, and those blocks in a JSON reply.

#include <fmt/format.h>

#include <algorithm>
#include <string>

#include "protocol/internal.hpp"

namespace glmproxy::detail {

namespace {

constexpr int kMinThinkingBudget = 1024;  // Anthropic's smallest budget_tokens

}  // namespace

Result<AnthropicThinking> anthropic_thinking(const ChatRequest& request, int max_tokens) {
  using Kind = AnthropicThinking::Kind;
  const std::optional<int>& budget = request.thinking_budget_tokens;
  if (request.thinking == false) {
    if (budget) {
      return invalid_argument(fmt::format(
          "thinking_budget_tokens is {} but thinking is false; unset one of them", *budget));
    }
    return AnthropicThinking{.kind = Kind::Disabled};
  }
  if (!request.thinking && !budget) return AnthropicThinking{};  // "thinking" not sent
  // The Messages API needs 1024 <= budget_tokens < max_tokens.
  if (budget) {
    if (*budget < kMinThinkingBudget || *budget >= max_tokens) {
      return invalid_argument(fmt::format(
          "thinking_budget_tokens must be at least {} and below max_tokens (Anthropic needs "
          "{} <= budget_tokens < max_tokens), got thinking_budget_tokens {} with max_tokens {}",
          kMinThinkingBudget, kMinThinkingBudget, *budget, max_tokens));
    }
    return AnthropicThinking{.kind = Kind::Enabled, .budget_tokens = *budget};
  }
  if (max_tokens <= kMinThinkingBudget) {
    return invalid_argument(fmt::format(
        "thinking on the Anthropic protocol needs max_tokens above {} (Anthropic needs {} <= "
        "budget_tokens < max_tokens, so no budget fits max_tokens {}); raise max_tokens or turn "
        "thinking off",
        kMinThinkingBudget, kMinThinkingBudget, max_tokens));
  }
  return AnthropicThinking{.kind = Kind::Enabled,
                           .budget_tokens = std::max(kMinThinkingBudget, max_tokens / 2)};
}

Result<void> validate_thinking_blocks(const ChatRequest& request) {
  for (std::size_t i = 0; i < request.messages.size(); ++i) {
    const Message& m = request.messages[i];
    if (m.thinking_blocks.empty()) continue;
    if (m.role != "assistant") {
      return invalid_argument(fmt::format(
          "messages[{}].thinking_blocks is only for assistant messages, got role \"{}\"", i,
          m.role));
    }
    for (std::size_t j = 0; j < m.thinking_blocks.size(); ++j) {
      const ThinkingBlock& b = m.thinking_blocks[j];
      const std::string path = fmt::format("messages[{}].thinking_blocks[{}]", i, j);
      switch (b.type) {
        case ThinkingBlock::Type::Thinking:
          // Anthropic refuses a thinking block without its signature.
          if (b.signature.empty()) {
            return invalid_argument(path +
                                    ".signature must not be empty (send the block back as the "
                                    "reply gave it)");
          }
          break;
        case ThinkingBlock::Type::Redacted:
          if (b.data.empty()) return invalid_argument(path + ".data must not be empty");
          break;
        default:
          return invalid_argument(
              fmt::format("{} has an unknown type {}", path, static_cast<int>(b.type)));
      }
    }
  }
  return {};
}

Result<void> append_thinking_blocks(std::string& out, const Message& m, std::size_t index,
                                    bool& first) {
  for (std::size_t j = 0; j < m.thinking_blocks.size(); ++j) {
    const ThinkingBlock& b = m.thinking_blocks[j];
    const auto field = [index, j](std::string_view name) {
      return fmt::format("messages[{}].thinking_blocks[{}].{}", index, j, name);
    };
    if (!first) out += ',';
    first = false;
    if (b.type == ThinkingBlock::Type::Redacted) {
      out += R"({"type":"redacted_thinking","data":)";
      if (!append_json_string(out, b.data)) return invalid_utf8(field("data"));
    } else {
      out += R"({"type":"thinking","thinking":)";
      if (!append_json_string(out, b.thinking)) return invalid_utf8(field("thinking"));
      out += R"(,"signature":)";
      if (!append_json_string(out, b.signature)) return invalid_utf8(field("signature"));
    }
    out += '}';
  }
  return {};
}

Result<bool> parse_thinking_block(simdjson::dom::object block, std::string_view type,
                                  const std::string& path, ChatResponse& response) {
  if (type == "thinking") {
    auto thinking = optional_string(block, "thinking", path + ".thinking");
    if (!thinking) return std::move(thinking).error();
    auto signature = optional_string(block, "signature", path + ".signature");
    if (!signature) return std::move(signature).error();
    response.reasoning_content += *thinking;
    ThinkingBlock& b = response.thinking_blocks.emplace_back();
    b.thinking = *thinking;
    b.signature = *signature;
    return true;
  }
  if (type == "redacted_thinking") {
    auto data = optional_string(block, "data", path + ".data");
    if (!data) return std::move(data).error();
    // Without its data the block could not be sent back (validate_thinking_blocks refuses it):
    // refused here, where the fault is.
    if (data->empty()) return bad_response(path + ".data is missing or empty");
    ThinkingBlock& b = response.thinking_blocks.emplace_back();
    b.type = ThinkingBlock::Type::Redacted;
    b.data = *data;
    return true;
  }
  return false;
}

}  // namespace glmproxy::detail
