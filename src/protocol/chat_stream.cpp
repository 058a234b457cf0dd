#include "protocol/chat_stream.hpp"

#include <simdjson.h>

#include <fmt/format.h>

#include <algorithm>
#include <limits>

#include "core/saturating.hpp"
#include "protocol/internal.hpp"
#include "protocol/protocol.hpp"

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

// Anthropic content blocks one stream may open.
constexpr std::size_t kMaxBlocks = 4096;

bool starts_with_ci(std::string_view s, std::string_view prefix) noexcept {
  if (s.size() < prefix.size()) return false;
  for (std::size_t i = 0; i < prefix.size(); ++i) {
    char c = s[i];
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    if (c != prefix[i]) return false;
  }
  return true;
}

}  // namespace

}  // namespace glmproxy::detail

namespace glmproxy {

// Public: declared in glmproxy/response.hpp.
std::string_view to_string(StreamEvent::Type type) noexcept {
  switch (type) {
    case StreamEvent::Type::Text:
      return "text";
    case StreamEvent::Type::Reasoning:
      return "reasoning";
    case StreamEvent::Type::ToolCall:
      return "tool_call";
    case StreamEvent::Type::Finish:
      return "finish";
    case StreamEvent::Type::Usage:
      return "usage";
    case StreamEvent::Type::Done:
      return "done";
  }
  return "unknown";
}

}  // namespace glmproxy

namespace glmproxy::detail {

ChatStream::ChatStream(Protocol protocol, const StreamCallback* on_event, SseLimits limits,
                       std::size_t max_reply_bytes)
    : protocol_(protocol),
      on_event_(on_event),
      parser_(limits),
      max_json_bytes_(std::min(limits.max_event_bytes, max_reply_bytes)),
      max_reply_bytes_(max_reply_bytes) {}

ChatStream::~ChatStream() = default;

void ChatStream::begin(BufferPool& pool, std::string_view content_type) {
  // Pooled storage, rebound per attempt (the pool belongs to the transport).
  parser_.set_pool(&pool);
  parser_.reset();
  json_.set_pool(&pool);
  content_.set_pool(&pool);
  reasoning_.set_pool(&pool);
  json_.clear();
  content_.clear();
  reasoning_.clear();
  // A 2xx JSON answer to a stream request (a server that ignored "stream": true, or an error
  // object) is read whole; everything else is parsed as an event stream.
  sse_ = !starts_with_ci(content_type, "application/json");
  id_.clear();
  model_.clear();
  finish_reason_.clear();
  tool_calls_.clear();
  usage_ = {};
  blocks_.clear();
  error_.reset();
  recorded_.clear();
  events_ = 0;
  reply_bytes_ = 0;
  built_ = false;
  done_ = finished_ = delivered_ = cancelled_ = false;
}

ChatStream::Action ChatStream::on_body(std::string_view chunk) {
  if (!sse_) {
    if (json_.size() + chunk.size() > max_json_bytes_) {
      fail(make_error(
          ErrorCode::BadResponse,
          fmt::format("JSON answer to a stream request larger than {} bytes", max_json_bytes_)));
      return Action::Fail;
    }
    json_.append(chunk);
    return Action::Continue;
  }
  switch (parser_.feed(chunk, *this)) {
    case SseParser::Status::Ok:
      if (done_) {
        // The end marker arrived: the reply is complete now, however long the upstream takes
        // to end the body (or whether it ever does).
        build_result();
        return Action::Finished;
      }
      return Action::Continue;
    case SseParser::Status::Stopped:
      return cancelled_ && !error_ ? Action::Cancel : Action::Fail;
    case SseParser::Status::Failed:
      if (!error_) error_ = parser_.error();
      return Action::Fail;
  }
  return Action::Fail;
}

Error ChatStream::error() const {
  if (error_) return *error_;
  return make_error(ErrorCode::Internal, "stream failed without an error");
}

std::string ChatStream::progress() const {
  if (!sse_) return fmt::format("{} bytes of JSON", json_.size());
  return fmt::format("{} bytes, {} events", parser_.bytes(), events_);
}

bool ChatStream::fail(Error error) {
  if (!error_) error_ = std::move(error);
  return false;
}

bool ChatStream::grow(std::size_t n) {
  if (n <= max_reply_bytes_ - std::min(max_reply_bytes_, reply_bytes_)) {
    reply_bytes_ += n;
    return true;
  }
  return fail(make_error(
      ErrorCode::BadResponse,
      fmt::format("the streamed reply is larger than GLMPROXY_MAX_RESPONSE_BYTES={} bytes (text, "
                  "reasoning, tool calls and recorded events together, after {} events)",
                  max_reply_bytes_, events_)));
}

bool ChatStream::emit(StreamEvent::Type type) {
  event_.type = type;
  if (type != StreamEvent::Type::ToolCall) {
    // Fields of another kind of event are not carried over (capacity is kept).
    event_.tool_index = 0;
    event_.tool_call_id.clear();
    event_.tool_name.clear();
  }
  if (type == StreamEvent::Type::Done || type == StreamEvent::Type::Usage) event_.text.clear();
  delivered_ = true;
  bool go_on = false;
  try {
    go_on = (*on_event_)(event_);
  } catch (...) {
    // An exception must not unwind through libcurl and the I/O thread.
    return fail(make_error(ErrorCode::Internal, "the stream's on_event callback threw"));
  }
  if (!go_on) cancelled_ = true;
  if (recording_) {
    // A recorded event keeps a copy of everything it carries.
    if (!grow(sizeof(StreamEvent) + event_.text.size() + event_.tool_call_id.size() +
              event_.tool_name.size())) {
      return false;
    }
    recorded_.push_back(event_);
  }
  return go_on;
}

bool ChatStream::add_text(Buffer& aggregate, StreamEvent::Type type, std::string_view text) {
  if (!grow(text.size())) return false;
  aggregate.append(text);
  return emit_text(type, text);
}

bool ChatStream::emit_text(StreamEvent::Type type, std::string_view text) {
  event_.text.assign(text);
  return emit(type);
}

bool ChatStream::emit_tool(std::size_t slot, std::string_view fragment) {
  const ToolCall& call = tool_calls_[slot];
  event_.tool_index = static_cast<int>(slot);
  event_.tool_call_id.assign(call.id);
  event_.tool_name.assign(call.name);
  event_.text.assign(fragment);
  return emit(StreamEvent::Type::ToolCall);
}

bool ChatStream::emit_usage() {
  event_.usage = usage_;
  return emit(StreamEvent::Type::Usage);
}

bool ChatStream::on_sse_event(const SseEvent& event) {
  ++events_;
  if (done_) return true;  // nothing counts after the end marker
  return protocol_ == Protocol::Anthropic ? anthropic_event(event) : openai_event(event);
}

namespace {

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
        if (auto calls = arr(*delta, "tool_calls")) {
          for (element tc : *calls) {
            object call;
            if (tc.get_object().get(call)) continue;
            const std::int64_t index = integer(call, "index").value_or(0);
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
    usage_ = make_usage(count(*usage, "prompt_tokens"), count(*usage, "completion_tokens"),
                        count(*usage, "total_tokens"));
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
        usage_ =
            make_usage(count(*usage, "input_tokens"), count(*usage, "output_tokens"), std::nullopt);
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
    block.index = integer(root, "index").value_or(0);
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
      blocks_.push_back(block);
      if (kind == "text") {
        if (auto text = str(*content, "text"); !text.empty()) {
          return add_text(content_, StreamEvent::Type::Text, text);
        }
      } else if (kind == "thinking") {
        if (auto text = str(*content, "thinking"); !text.empty()) {
          return add_text(reasoning_, StreamEvent::Type::Reasoning, text);
        }
      }
    }
    return true;
  }
  if (type == "content_block_delta") {
    auto delta = obj(root, "delta");
    if (!delta) return true;
    const std::string_view kind = str(*delta, "type");
    if (kind == "text_delta") {
      const std::string_view text = str(*delta, "text");
      if (text.empty()) return true;
      return add_text(content_, StreamEvent::Type::Text, text);
    }
    if (kind == "thinking_delta") {
      const std::string_view text = str(*delta, "thinking");
      if (text.empty()) return true;
      return add_text(reasoning_, StreamEvent::Type::Reasoning, text);
    }
    if (kind == "input_json_delta") {
      const std::int64_t index = integer(root, "index").value_or(0);
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
    return true;  // signature_delta, citations and future kinds carry no text for the caller
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
      if (auto in = count(*usage, "input_tokens")) usage_.prompt_tokens = *in;
      if (auto out = count(*usage, "output_tokens")) usage_.completion_tokens = *out;
      usage_.total_tokens = saturating_add(usage_.prompt_tokens, usage_.completion_tokens);
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

std::optional<Error> ChatStream::finish_json() {
  std::string body(json_.view());
  auto parsed = parse_chat_response(protocol_, body);
  if (!parsed) return std::move(parsed).error();
  ChatResponse& r = *parsed;
  id_ = r.id;
  model_ = r.model;
  content_.clear();
  content_.append(r.content);
  reasoning_.clear();
  reasoning_.append(r.reasoning_content);
  tool_calls_ = r.tool_calls;
  usage_ = r.usage;
  finish_reason_ = r.finish_reason;
  // The whole answer as events, in stream order.
  bool go_on =
      r.reasoning_content.empty() || emit_text(StreamEvent::Type::Reasoning, r.reasoning_content);
  if (go_on && !r.content.empty()) go_on = emit_text(StreamEvent::Type::Text, r.content);
  for (std::size_t i = 0; go_on && i < tool_calls_.size(); ++i) {
    go_on = emit_tool(i, tool_calls_[i].arguments_json);
  }
  if (go_on && !finish_reason_.empty())
    go_on = emit_text(StreamEvent::Type::Finish, finish_reason_);
  if (go_on) go_on = emit_usage();
  if (go_on) emit(StreamEvent::Type::Done);
  done_ = true;
  if (error_) return error_;
  return std::nullopt;
}

std::optional<Error> ChatStream::on_end() {
  if (error_) return error_;
  if (!sse_) {
    if (auto e = finish_json()) return e;
    build_result();
    return std::nullopt;
  }
  const bool mid_event = parser_.finish();
  // A stream that ended cleanly after its finish reason is complete even without the end
  // marker (some compatible servers omit [DONE]); anything else was cut.
  if (done_ || (finished_ && !mid_event)) {
    build_result();
    return std::nullopt;
  }
  return make_error(
      ErrorCode::BadResponse,
      fmt::format("the stream was cut: the upstream ended the response after {}{} without {}",
                  progress(), mid_event ? " (in the middle of an event)" : "",
                  protocol_ == Protocol::Anthropic ? "message_stop" : "[DONE]"));
}

void ChatStream::build_result() {
  if (built_) return;  // at the end marker, and again if the body's end is seen too
  built_ = true;
  ChatResponse& r = result_;
  r.id = std::move(id_);
  r.model = std::move(model_);
  r.content.assign(content_.view());
  r.reasoning_content.assign(reasoning_.view());
  r.finish_reason = std::move(finish_reason_);
  r.tool_calls = std::move(tool_calls_);
  r.usage = usage_;
}

void ChatStream::release() noexcept {
  parser_.set_pool(nullptr);
  json_.set_pool(nullptr);
  content_.set_pool(nullptr);
  reasoning_.set_pool(nullptr);
}

}  // namespace glmproxy::detail
