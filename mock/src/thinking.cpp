#include "thinking.hpp"

#include <cstdint>

namespace glmproxy::mock::detail {

namespace {

constexpr std::string_view kDefaultThinking =
    "The user asks a question. The mock upstream thinks about it briefly.";

std::string path(const RequestInfo& info, std::size_t n) {
  return "messages." + std::to_string(info.message_index) + ".content." + std::to_string(n);
}

}  // namespace

std::string_view anthropic_thinking_text(const RequestInfo& info, const MockOptions& options) {
  if (info.thinking_disabled) return {};
  if (!options.reasoning_text.empty()) return options.reasoning_text;
  return info.thinking_enabled ? kDefaultThinking : std::string_view();
}

std::string mock_signature(std::string_view thinking) {
  std::uint64_t h = 1469598103934665603ull;
  for (char c : thinking) h = (h ^ static_cast<unsigned char>(c)) * 1099511628211ull;
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out = "mocksig-";
  for (int shift = 60; shift >= 0; shift -= 4) out += kHex[(h >> shift) & 0xF];
  return out;
}

void append_thinking_json(std::string& out, std::string_view thinking, bool redacted) {
  if (!thinking.empty()) {
    out += R"({"type":"thinking","thinking":)";
    append_json_string(out, thinking);
    out += R"(,"signature":)";
    append_json_string(out, mock_signature(thinking));
    out += "},";
  }
  if (redacted) {
    out += R"({"type":"redacted_thinking","data":)";
    append_json_string(out, kMockRedactedData);
    out += "},";
  }
}

std::vector<std::pair<std::string, std::string>> thinking_stream_events(
    int& index, std::string_view thinking, const std::vector<std::string_view>& pieces,
    bool redacted) {
  std::vector<std::pair<std::string, std::string>> out;
  const auto start = [&](std::string_view block) {
    out.emplace_back("content_block_start", R"({"type":"content_block_start","index":)" +
                                                std::to_string(index) + R"(,"content_block":)" +
                                                std::string(block) + "}");
    if (index == 0) out.emplace_back("ping", R"({"type": "ping"})");
  };
  const auto delta = [&](std::string_view type, std::string_view field, std::string_view text) {
    std::string d = R"({"type":"content_block_delta","index":)" + std::to_string(index) +
                    R"(,"delta":{"type":")" + std::string(type) + R"(",")" + std::string(field) +
                    R"(":)";
    append_json_string(d, text);
    d += "}}";
    out.emplace_back("content_block_delta", std::move(d));
  };
  const auto stop = [&] {
    out.emplace_back("content_block_stop",
                     R"({"type":"content_block_stop","index":)" + std::to_string(index) + "}");
    ++index;
  };
  if (!thinking.empty()) {
    // Anthropic streams the text as thinking_delta pieces, then the whole signature in one
    // signature_delta just before content_block_stop ("Extended thinking", streaming).
    start(R"({"type":"thinking","thinking":""})");
    for (std::string_view piece : pieces) delta("thinking_delta", "thinking", piece);
    delta("signature_delta", "signature", mock_signature(thinking));
    stop();
  }
  if (redacted) {
    std::string block = R"({"type":"redacted_thinking","data":)";
    append_json_string(block, kMockRedactedData);
    block += '}';
    start(block);
    stop();
  }
  return out;
}

void check_thinking_block(simdjson::ondemand::object block, std::size_t n, RequestInfo& info) {
  if (!info.thinking_error.empty()) return;
  std::string_view type;
  if (block.find_field_unordered("type").get_string().get(type)) return;
  if (type == "thinking") {
    // Copied: the next lookup in the same object may reuse the parser's string buffer.
    std::string_view view;
    std::string thinking;
    if (!block.find_field_unordered("thinking").get_string().get(view)) thinking = view;
    std::string_view signature;
    if (block.find_field_unordered("signature").get_string().get(signature) ||
        signature != mock_signature(thinking)) {
      info.thinking_error = path(info, n) + ": Invalid `signature` in `thinking` block";
    }
  } else if (type == "redacted_thinking") {
    std::string_view data;
    if (block.find_field_unordered("data").get_string().get(data) || data != kMockRedactedData) {
      info.thinking_error = path(info, n) + ": Invalid `data` in `redacted_thinking` block";
    }
  }
}

}  // namespace glmproxy::mock::detail
