// ChatStream's event decoding (the class is in chat_stream.hpp): one SSE event's data parsed
// with simdjson into StreamEvents and the aggregate, for OpenAI chat.completion.chunk events
// ([DONE] at the end) and Anthropic message events (message_start ... message_stop), and the
// error events either may send inside a 200 stream. Delivery, the reply's byte cap, the JSON
// fallback and the aggregate's lifecycle are in chat_stream.cpp.

#include <simdjson.h>

#include <fmt/format.h>

#include <cstdint>
#include <limits>
#include <optional>

#include "core/saturating.hpp"
#include "protocol/chat_stream.hpp"
#include "protocol/internal.hpp"

namespace glmproxy::detail {

namespace {

static_assert(simdjson::SIMDJSON_PADDING <= kSseDataPadding,
              "SseEvent::data must be padded for simdjson");

using simdjson::dom::array;
using simdjson::dom::element;
using simdjson::dom::object;

std::string_view str(object o, std::string_view key) noexcept {
  std::string_view s;
  if (o[key].get_string().get(s)) return {};
  return s;
}

std::optional<std::int64_t> integer(object o, std::string_view key) noexcept {
  std::int64_t v = 0;
  if (o[key].get_int64().get(v)) return std::nullopt;
  return v;
}

// A token count from the upstream: negative -> 0, above INT64_MAX -> INT64_MAX, not a number ->
// absent.
std::optional<std::int64_t> count(object o, std::string_view key) noexcept {
  std::int64_t v = 0;
  if (!o[key].get_int64().get(v)) return non_negative(v);
  std::uint64_t big = 0;
  if (!o[key].get_uint64().get(big)) return std::numeric_limits<std::int64_t>::max();
  return std::nullopt;
}

// The `index` member of a tool-call delta or a content-block event: absent or null is 0 (a
// server streaming one call may leave it out), any other non-integer (a float, a string, a
// number past INT64_MAX) is BadResponse naming `path`: read as 0, it would join another call's
// or block's pieces without a word.
Result<std::int64_t> index_of(object o, std::string_view path) {
  auto index = optional_int(o, "index", path);
  if (!index) return std::move(index).error();
  return index->value_or(0);
}

// `e` (about a member of stream event `n`) saying which event.
Error in_event(std::uint64_t n, const Error& e) {
  return make_error(e.code, fmt::format("stream event {}: {}", n, e.message));
}

std::optional<object> obj(object o, std::string_view key) noexcept {
  object out;
  if (o[key].get_object().get(out)) return std::nullopt;
  return out;
}

std::optional<array> arr(object o, std::string_view key) noexcept {
  array out;
  if (o[key].get_array().get(out)) return std::nullopt;
  return out;
}

// `key` of a details object inside a usage object (absent when either is missing).
std::optional<std::int64_t> detail_count(object usage, std::string_view details,
                                         std::string_view key) noexcept {
  if (auto d = obj(usage, details)) return count(*d, key);
  return std::nullopt;
}

OpenAiUsageCounts openai_counts(object usage) noexcept {
  OpenAiUsageCounts c;
  c.prompt = count(usage, "prompt_tokens");
  c.completion = count(usage, "completion_tokens");
  c.total = count(usage, "total_tokens");
  c.cached = detail_count(usage, "prompt_tokens_details", "cached_tokens");
  c.reasoning = detail_count(usage, "completion_tokens_details", "reasoning_tokens");
  return c;
}

AnthropicUsageCounts anthropic_counts(object usage) noexcept {
  AnthropicUsageCounts c;
  c.input = count(usage, "input_tokens");
  c.output = count(usage, "output_tokens");
  c.cache_creation = count(usage, "cache_creation_input_tokens");
  c.cache_read = count(usage, "cache_read_input_tokens");
  return c;
}

// Anthropic content blocks one stream may open.
constexpr std::size_t kMaxBlocks = 4096;

// Parses an event's data (padded by the SSE parser) as a JSON object.
// Messages say which event, where it ended and the parser's reason, never the event's text: a
// malformed event may carry anything, a credential included.
Result<object> parse_event(ScratchParser& scratch, const SseEvent& event, std::uint64_t n,
                           std::uint64_t offset) {
  element root;
  if (auto error = scratch.get().parse(event.data.data(), event.data.size(), false).get(root)) {
    return make_error(ErrorCode::BadResponse,
                      fmt::format("stream event {} (data of {} bytes, ending by byte {} of the "
                                  "stream) is not valid JSON: {}",
                                  n, event.data.size(), offset, simdjson::error_message(error)));
  }
  object o;
  if (root.get_object().get(o)) {
    return make_error(ErrorCode::BadResponse,
                      fmt::format("stream event {} (data of {} bytes, ending by byte {} of the "
                                  "stream) is JSON but not an object",
                                  n, event.data.size(), offset));
  }
  return o;
}

}  // namespace

bool ChatStream::on_sse_event(const SseEvent& event) {
  ++events_;
  if (done_) return true;  // nothing counts after the end marker
  return protocol_ == Protocol::Anthropic ? anthropic_event(event) : openai_event(event);
}

bool ChatStream::openai_event(const SseEvent& event) {
  if (event.data == "[DONE]") {
    done_ = true;
    return emit(StreamEvent::Type::Done);
  }
  // OpenAI-compatible servers may send `event: error` with a flat error object.
  if (event.type == "error") return error_event(event);
  ScratchParser scratch;
  auto parsed = parse_event(scratch, event, events_, parser_.bytes());
  if (!parsed) return fail(std::move(parsed).error());
  const object root = *parsed;
  if (auto e = error_in_body(Protocol::OpenAI, root, 200)) return fail(std::move(*e));
  if (id_.empty()) id_.assign(str(root, "id"));
  if (model_.empty()) model_.assign(str(root, "model"));
  if (request_id_.empty()) request_id_.assign(str(root, "request_id"));  // Z.AI
  if (created_ == 0) created_ = non_negative(integer(root, "created").value_or(0));
  // Z.AI sends the results of a web_search tool call in a chunk of their own.
  if (auto results = arr(root, "web_search")) {
    if (!add_web_search(simdjson::minify(*results))) return false;
  }
  if (auto choices = arr(root, "choices")) {
    for (element c : *choices) {
      object choice;
      if (c.get_object().get(choice)) continue;
      if (integer(choice, "index").value_or(0) != 0) continue;  // n > 1: the first choice only
      if (auto delta = obj(choice, "delta")) {
        if (auto text = str(*delta, "reasoning_content"); !text.empty()) {
          if (!add_text(reasoning_, StreamEvent::Type::Reasoning, text)) return false;
        }
        if (auto text = str(*delta, "content"); !text.empty()) {
          if (!add_text(content_, StreamEvent::Type::Text, text)) return false;
        }
        if (auto text = str(*delta, "refusal"); !text.empty()) {
          if (!add_text(refusal_, StreamEvent::Type::Refusal, text)) return false;
        }
        if (auto calls = arr(*delta, "tool_calls")) {
          for (element tc : *calls) {
            object call;
            if (tc.get_object().get(call)) continue;
            const auto indexed = index_of(call, "tool_calls index");
            if (!indexed) return fail(in_event(events_, indexed.error()));
            const std::int64_t index = *indexed;
            if (index < 0 || index > 1024) {
              return fail(
                  make_error(ErrorCode::BadResponse,
                             fmt::format("stream event {}: tool_calls index {} out of range",
                                         events_, index)));
            }
            const auto slot = static_cast<std::size_t>(index);
            if (tool_calls_.size() <= slot) {
              if (!grow((slot + 1 - tool_calls_.size()) * sizeof(ToolCall))) return false;
              tool_calls_.resize(slot + 1);
            }
            ToolCall& aggregate = tool_calls_[slot];
            // Ids and names count once per call (a repeated one replaces, it does not add).
            auto replace = [this](std::string& field, std::string_view value) {
              if (value.size() > field.size() && !grow(value.size() - field.size())) return false;
              field.assign(value);
              return true;
            };
            if (auto id = str(call, "id"); !id.empty() && !replace(aggregate.id, id)) return false;
            std::string_view fragment;
            if (auto function = obj(call, "function")) {
              if (auto name = str(*function, "name");
                  !name.empty() && !replace(aggregate.name, name)) {
                return false;
              }
              fragment = str(*function, "arguments");
            }
            if (!grow(fragment.size())) return false;
            aggregate.arguments_json.append(fragment);
            if (!emit_tool(slot, fragment)) return false;
          }
        }
      }
      if (auto reason = str(choice, "finish_reason"); !reason.empty()) {
        finish_reason_.assign(reason);
        finished_ = true;
        if (!emit_text(StreamEvent::Type::Finish, reason)) return false;
      }
    }
  }
  if (auto usage = obj(root, "usage")) {
    usage_ = make_usage(openai_counts(*usage));
    if (!emit_usage()) return false;
  }
  return true;
}

bool ChatStream::error_event(const SseEvent& event) {
  ScratchParser scratch;
  element root;
  object o;
  if (scratch.get().parse(event.data.data(), event.data.size(), false).get(root) ||
      root.get_object().get(o)) {
    return fail(make_error(ErrorCode::UpstreamError,
                           fmt::format("error event inside the stream (event {}; its data of {} "
                                       "bytes is not a JSON object)",
                                       events_, event.data.size())));
  }
  return fail(stream_error_event(protocol_, o, 200));
}

bool ChatStream::anthropic_event(const SseEvent& event) {
  ScratchParser scratch;
  auto parsed = parse_event(scratch, event, events_, parser_.bytes());
  if (!parsed) return fail(std::move(parsed).error());
  const object root = *parsed;
  std::string_view type = str(root, "type");
  if (type.empty()) type = event.type;
  if (type == "error" || root["error"].error() == simdjson::SUCCESS) {
    if (auto e = error_in_body(Protocol::Anthropic, root, 200)) return fail(std::move(*e));
    return fail(make_error(ErrorCode::UpstreamError, "error event inside the stream"));
  }
  if (type == "message_start") {
    if (auto message = obj(root, "message")) {
      id_.assign(str(*message, "id"));
      model_.assign(str(*message, "model"));
      if (auto usage = obj(*message, "usage")) {
        anthropic_usage_ = anthropic_counts(*usage);
        usage_ = make_usage(anthropic_usage_);
      }
    }
    return true;
  }
  if (type == "content_block_start") {
    // Each block costs a little, and input_json_delta looks through them: both bounded.
    if (blocks_.size() >= kMaxBlocks) {
      return fail(make_error(
          ErrorCode::BadResponse,
          fmt::format("stream event {}: more than {} content blocks", events_, kMaxBlocks)));
    }
    if (!grow(sizeof(Block))) return false;
    Block block;
    const auto index = index_of(root, "content block index");
    if (!index) return fail(in_event(events_, index.error()));
    block.index = *index;
    if (auto content = obj(root, "content_block")) {
      const std::string_view kind = str(*content, "type");
      if (kind == "tool_use" || kind == "server_tool_use") {
        block.is_tool = true;
        block.tool = tool_calls_.size();
        const std::string_view id = str(*content, "id"), name = str(*content, "name");
        if (!grow(sizeof(ToolCall) + id.size() + name.size())) return false;
        ToolCall& call = tool_calls_.emplace_back();
        call.id.assign(id);
        call.name.assign(name);
        blocks_.push_back(block);
        return emit_tool(block.tool, {});
      }
      if (kind == "thinking") {
        return start_thinking(block, kind, str(*content, "thinking"), str(*content, "signature"));
      }
      if (kind == "redacted_thinking") {
        // Without its data the block could not be sent back (validate_thinking_blocks refuses
        // it): refused here, where the fault is.
        const std::string_view data = str(*content, "data");
        if (data.empty()) {
          return fail(make_error(ErrorCode::BadResponse,
                                 fmt::format("stream event {}: redacted_thinking block {} has no "
                                             "data (a non-empty string)",
                                             events_, block.index)));
        }
        return start_thinking(block, kind, {}, data);
      }
      blocks_.push_back(block);
      if (kind == "text") {
        if (auto text = str(*content, "text"); !text.empty()) {
          return add_text(content_, StreamEvent::Type::Text, text);
        }
      }
    }
    return true;
  }
  if (type == "content_block_delta") {
    auto delta = obj(root, "delta");
    if (!delta) return true;
    const std::string_view kind = str(*delta, "type");
    const auto indexed = index_of(root, "content block index");
    if (!indexed) return fail(in_event(events_, indexed.error()));
    const std::int64_t index = *indexed;
    if (kind == "text_delta") {
      const std::string_view text = str(*delta, "text");
      if (text.empty()) return true;
      return add_text(content_, StreamEvent::Type::Text, text);
    }
    if (kind == "thinking_delta") {
      return add_thinking(index, str(*delta, "thinking"));
    }
    if (kind == "signature_delta") {
      return add_signature(index, str(*delta, "signature"));
    }
    if (kind == "input_json_delta") {
      std::optional<std::size_t> slot;
      for (const Block& b : blocks_) {
        if (b.index == index && b.is_tool) slot = b.tool;
      }
      if (!slot) {
        return fail(make_error(ErrorCode::BadResponse,
                               fmt::format("stream event {}: input_json_delta for content block "
                                           "{}, which is no tool_use block",
                                           events_, index)));
      }
      const std::string_view fragment = str(*delta, "partial_json");
      if (!grow(fragment.size())) return false;
      tool_calls_[*slot].arguments_json.append(fragment);
      return emit_tool(*slot, fragment);
    }
    return true;  // citations and future kinds carry no text for the caller
  }
  if (type == "message_delta") {
    if (auto delta = obj(root, "delta")) {
      if (auto reason = str(*delta, "stop_reason"); !reason.empty()) {
        finish_reason_.assign(reason);
        finished_ = true;
        if (!emit_text(StreamEvent::Type::Finish, reason)) return false;
      }
    }
    if (auto usage = obj(root, "usage")) {
      // Cumulative counts: those message_delta sends replace message_start's.
      anthropic_usage_.merge(anthropic_counts(*usage));
      usage_ = make_usage(anthropic_usage_);
      return emit_usage();
    }
    return true;
  }
  if (type == "message_stop") {
    done_ = true;
    return emit(StreamEvent::Type::Done);
  }
  return true;  // ping, content_block_stop and event types added later
}

}  // namespace glmproxy::detail
