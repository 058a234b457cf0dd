// ChatStream (chat_stream.hpp): the stream's lifecycle per attempt, SSE bytes to the parser or
// a JSON answer buffered, delivery of each event to on_event (and its recording), the reply's
// byte cap, and the aggregate at the end. What one event means, per protocol, is decoded in
// chat_stream_events.cpp.

#include "protocol/chat_stream.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <limits>

#include "protocol/protocol.hpp"

namespace glmproxy::detail {

namespace {

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
    case StreamEvent::Type::Refusal:
      return "refusal";
    case StreamEvent::Type::WebSearch:
      return "web_search";
    case StreamEvent::Type::Signature:
      return "signature";
    case StreamEvent::Type::RedactedThinking:
      return "redacted_thinking";
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
  refusal_.set_pool(&pool);
  json_.clear();
  content_.clear();
  reasoning_.clear();
  refusal_.clear();
  // A 2xx JSON answer to a stream request (a server that ignored "stream": true, or an error
  // object) is read whole; everything else is parsed as an event stream.
  sse_ = !starts_with_ci(content_type, "application/json");
  id_.clear();
  model_.clear();
  finish_reason_.clear();
  request_id_.clear();
  created_ = 0;
  web_search_.clear();
  tool_calls_.clear();
  usage_ = {};
  anthropic_usage_ = {};
  blocks_.clear();
  thinking_blocks_.clear();
  error_.reset();
  recorded_.clear();
  events_ = 0;
  reply_bytes_ = 0;
  built_ = false;
  done_ = finished_ = delivered_ = cancelled_ = false;
}

ChatStream::Action ChatStream::on_body(std::string_view chunk) {
  const Action action = feed(chunk);
  // The events of one chunk are handed on together (one wake-up of the consumer, not one each).
  if (after_chunk_) after_chunk_();
  return action;
}

ChatStream::Action ChatStream::feed(std::string_view chunk) {
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
    // Fields of another kind of event are not carried over (capacity is kept). Thinking
    // events carry their block's index in tool_index.
    if (type != StreamEvent::Type::Signature && type != StreamEvent::Type::RedactedThinking) {
      event_.tool_index = 0;
    }
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
    // A recorded event keeps a copy of everything it carries (a ToolCall's id and name were
    // counted by emit_tool, for every event).
    if (!grow(sizeof(StreamEvent) + event_.text.size())) return false;
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
  // Each ToolCall event carries its own copy of the call's id and name, and a consumer slower
  // than the upstream keeps every copy queued (EventChannel): they count per event, or one large
  // name followed by many empty pieces would be multiplied past the cap.
  if (!grow(call.id.size() + call.name.size())) return false;
  event_.tool_index = static_cast<int>(slot);
  event_.tool_call_id.assign(call.id);
  event_.tool_name.assign(call.name);
  event_.text.assign(fragment);
  return emit(StreamEvent::Type::ToolCall);
}

bool ChatStream::emit_thinking(StreamEvent::Type type, std::int64_t index, std::string_view text) {
  event_.tool_index =
      static_cast<int>(std::clamp<std::int64_t>(index, 0, std::numeric_limits<int>::max()));
  return emit_text(type, text);
}

ThinkingBlock* ChatStream::thinking_block(std::int64_t index) noexcept {
  for (auto it = blocks_.rbegin(); it != blocks_.rend(); ++it) {
    if (it->index == index) return it->is_thinking ? &thinking_blocks_[it->thinking] : nullptr;
  }
  return nullptr;
}

bool ChatStream::start_thinking(Block block, std::string_view kind, std::string_view text,
                                std::string_view signature_or_data) {
  if (!grow(sizeof(ThinkingBlock) + text.size() + signature_or_data.size())) return false;
  block.is_thinking = true;
  block.thinking = thinking_blocks_.size();
  blocks_.push_back(block);
  ThinkingBlock& b = thinking_blocks_.emplace_back();
  if (kind == "redacted_thinking") {
    // A redacted block comes whole in its content_block_start (Anthropic "Extended thinking").
    b.type = ThinkingBlock::Type::Redacted;
    b.data.assign(signature_or_data);
    return emit_thinking(StreamEvent::Type::RedactedThinking, block.index, signature_or_data);
  }
  b.thinking.assign(text);
  b.signature.assign(signature_or_data);
  if (!text.empty() && !add_text(reasoning_, StreamEvent::Type::Reasoning, text)) return false;
  if (signature_or_data.empty()) return true;
  return emit_thinking(StreamEvent::Type::Signature, block.index, signature_or_data);
}

bool ChatStream::add_thinking(std::int64_t index, std::string_view text) {
  if (text.empty()) return true;
  // A thinking_delta without its content_block_start still counts as reasoning.
  if (ThinkingBlock* b = thinking_block(index); b != nullptr) {
    if (b->type != ThinkingBlock::Type::Thinking) {
      return fail(make_error(ErrorCode::BadResponse,
                             fmt::format("stream event {}: thinking_delta for content block {}, "
                                         "which is a redacted_thinking block",
                                         events_, index)));
    }
    if (!grow(text.size())) return false;  // the block's copy; add_text counts the other
    b->thinking.append(text);
  }
  return add_text(reasoning_, StreamEvent::Type::Reasoning, text);
}

bool ChatStream::add_signature(std::int64_t index, std::string_view piece) {
  ThinkingBlock* b = thinking_block(index);
  if (b == nullptr || b->type != ThinkingBlock::Type::Thinking) {
    return fail(make_error(ErrorCode::BadResponse,
                           fmt::format("stream event {}: signature_delta for content block {}, "
                                       "which is no thinking block",
                                       events_, index)));
  }
  if (piece.empty()) return true;
  if (!grow(piece.size())) return false;
  b->signature.append(piece);
  return emit_thinking(StreamEvent::Type::Signature, index, piece);
}

bool ChatStream::emit_usage() {
  event_.usage = usage_;
  return emit(StreamEvent::Type::Usage);
}

bool ChatStream::add_web_search(std::string_view array_json) {
  // Arrays of several chunks join into one: "[a]" + "[b]" -> "[a,b]".
  if (array_json.size() < 2) return true;
  const std::string_view items = array_json.substr(1, array_json.size() - 2);
  if (!grow(array_json.size())) return false;
  if (web_search_.empty()) {
    web_search_.assign(array_json);
  } else if (!items.empty()) {
    web_search_.pop_back();  // the closing ']'
    if (web_search_.size() > 1) web_search_ += ',';
    web_search_ += items;
    web_search_ += ']';
  }
  return emit_text(StreamEvent::Type::WebSearch, array_json);
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
  refusal_.clear();
  refusal_.append(r.refusal);
  tool_calls_ = r.tool_calls;
  usage_ = r.usage;
  finish_reason_ = r.finish_reason;
  request_id_ = r.request_id;
  created_ = r.created;
  web_search_ = r.web_search_json;
  thinking_blocks_ = r.thinking_blocks;
  // The whole answer as events, in stream order (Z.AI sends web_search first).
  bool go_on =
      r.web_search_json.empty() || emit_text(StreamEvent::Type::WebSearch, r.web_search_json);
  if (go_on && !r.reasoning_content.empty()) {
    go_on = emit_text(StreamEvent::Type::Reasoning, r.reasoning_content);
  }
  // Anthropic puts the thinking blocks first: block i is content block i.
  for (std::size_t i = 0; go_on && i < r.thinking_blocks.size(); ++i) {
    const ThinkingBlock& b = r.thinking_blocks[i];
    const auto index = static_cast<std::int64_t>(i);
    if (b.type == ThinkingBlock::Type::Redacted) {
      go_on = emit_thinking(StreamEvent::Type::RedactedThinking, index, b.data);
    } else if (!b.signature.empty()) {
      go_on = emit_thinking(StreamEvent::Type::Signature, index, b.signature);
    }
  }
  if (go_on && !r.content.empty()) go_on = emit_text(StreamEvent::Type::Text, r.content);
  if (go_on && !r.refusal.empty()) go_on = emit_text(StreamEvent::Type::Refusal, r.refusal);
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
  r.refusal.assign(refusal_.view());
  r.request_id = std::move(request_id_);
  r.created = created_;
  r.web_search_json = std::move(web_search_);
  r.thinking_blocks = std::move(thinking_blocks_);
}

void ChatStream::release() noexcept {
  parser_.set_pool(nullptr);
  json_.set_pool(nullptr);
  content_.set_pool(nullptr);
  reasoning_.set_pool(nullptr);
  refusal_.set_pool(nullptr);
}

}  // namespace glmproxy::detail
