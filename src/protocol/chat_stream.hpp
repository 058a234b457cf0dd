#pragma once

// A streamed chat reply: SSE bytes in (from the transport, on the I/O thread), StreamEvents out
// to `on_event` (which hands them to the consumer's thread), and the aggregate ChatResponse at
// the end. OpenAI chat.completion.chunk streams (`[DONE]`) and Anthropic message streams
// (message_start ... message_stop). chat_stream_events.cpp decodes each event per protocol;
// chat_stream.cpp has the rest (lifecycle, delivery, the byte cap, the aggregate).

#include <atomic>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "buffer/buffer_pool.hpp"
#include "glmproxy/error.hpp"
#include "glmproxy/request.hpp"
#include "glmproxy/response.hpp"
#include "protocol/body_sink.hpp"
#include "protocol/sse.hpp"
#include "protocol/usage_counts.hpp"

namespace glmproxy::detail {

using StreamCallback = std::function<bool(const StreamEvent&)>;

/// Thread safety: not thread-safe (the transport drives it from the I/O thread; the caller
/// reads take_response() only after the exchange was resolved).
class ChatStream final : public BodySink, private SseSink {
 public:
  /// `on_event` must outlive every call into this object until the exchange is resolved.
  /// `max_reply_bytes` bounds the aggregate (text, reasoning, tool arguments, and the recorded
  /// events when recording): GLMPROXY_MAX_RESPONSE_BYTES.
  ChatStream(Protocol protocol, const StreamCallback* on_event, SseLimits limits,
             std::size_t max_reply_bytes = 32u << 20);
  ~ChatStream() override;
  ChatStream(const ChatStream&) = delete;
  ChatStream& operator=(const ChatStream&) = delete;

  void begin(BufferPool& pool, std::string_view content_type) override;
  Action on_body(std::string_view chunk) override;
  std::optional<Error> on_end() override;
  Error error() const override;
  bool delivered() const noexcept override { return delivered_; }
  bool cancel_requested() const noexcept override {
    return cancel_flag_ != nullptr && cancel_flag_->load(std::memory_order_acquire);
  }
  /// `flag` (set by the consumer's thread, then Transport::poke()) cancels the stream; it must
  /// outlive the exchange.
  void watch_cancel(const std::atomic<bool>* flag) noexcept { cancel_flag_ = flag; }
  /// Called (on the I/O thread) after each body chunk's events went to on_event: where a
  /// consumer on another thread is woken once per chunk. Must not throw.
  void after_chunk(std::function<void()> f) noexcept { after_chunk_ = std::move(f); }
  void release() noexcept override;
  std::string progress() const override;

  /// The aggregate reply (built when on_end() returned nullopt). raw_json stays empty: a stream
  /// is not kept whole.
  ChatResponse take_response() { return std::move(result_); }

  /// Keeps a copy of every delivered event (for the response cache; costs an allocation per
  /// event, so it is off unless the cache is on).
  void record_events(bool on) noexcept { recording_ = on; }
  std::vector<StreamEvent> take_events() { return std::move(recorded_); }

  bool done() const noexcept { return done_; }
  bool cancelled() const noexcept { return cancelled_; }
  std::uint64_t events() const noexcept { return events_; }

 private:
  Action feed(std::string_view chunk);
  bool on_sse_event(const SseEvent& event) override;
  bool openai_event(const SseEvent& event);
  bool anthropic_event(const SseEvent& event);
  bool emit(StreamEvent::Type type);
  bool emit_text(StreamEvent::Type type, std::string_view text);
  /// Counts `text` against the cap, adds it to `aggregate` and delivers it as a `type` event.
  bool add_text(Buffer& aggregate, StreamEvent::Type type, std::string_view text);
  bool emit_tool(std::size_t slot, std::string_view fragment);
  /// Delivers a Signature / RedactedThinking event of content block `index`.
  bool emit_thinking(StreamEvent::Type type, std::int64_t index, std::string_view text);
  bool emit_usage();
  /// Adds a web_search array (minified JSON) to the aggregate and delivers it.
  bool add_web_search(std::string_view array_json);
  bool fail(Error error);
  /// Counts `n` more bytes of aggregate; false (and the error set) past max_reply_bytes_.
  bool grow(std::size_t n);
  bool error_event(const SseEvent& event);
  std::optional<Error> finish_json();
  void build_result();

  struct Block {
    std::int64_t index = 0;
    std::size_t tool = 0;      // slot in tool_calls_ for tool_use blocks
    std::size_t thinking = 0;  // slot in thinking_blocks_ for thinking blocks
    bool is_tool = false;
    bool is_thinking = false;
  };
  /// The thinking block opened with content_block_start `index`, or nullptr.
  ThinkingBlock* thinking_block(std::int64_t index) noexcept;
  /// content_block_start of a thinking / redacted_thinking block `kind`: its text and
  /// signature (thinking) or data (redacted).
  bool start_thinking(Block block, std::string_view kind, std::string_view text,
                      std::string_view signature_or_data);
  /// signature_delta `piece` for the block `index`: added to it, delivered as Signature.
  bool add_signature(std::int64_t index, std::string_view piece);
  /// thinking_delta `text` for the block `index`: to the reasoning and to its block.
  bool add_thinking(std::int64_t index, std::string_view text);

  Protocol protocol_;
  const StreamCallback* on_event_;
  const std::atomic<bool>* cancel_flag_ = nullptr;
  std::function<void()> after_chunk_;
  SseParser parser_;
  bool sse_ = true;  // false: the upstream answered with a JSON body (buffered in json_)
  Buffer json_;
  std::size_t max_json_bytes_;
  std::size_t max_reply_bytes_;
  std::size_t reply_bytes_ = 0;

  // The aggregate.
  std::string id_, model_, finish_reason_, request_id_;
  std::int64_t created_ = 0;
  Buffer content_, reasoning_, refusal_;
  std::string web_search_;  // the web_search arrays seen, joined into one
  std::vector<ToolCall> tool_calls_;
  Usage usage_;
  AnthropicUsageCounts anthropic_usage_;  // message_start's counts, updated by message_delta
  std::vector<Block> blocks_;             // Anthropic content blocks seen
  std::vector<ThinkingBlock> thinking_blocks_;

  ChatResponse result_;
  StreamEvent event_;  // reused: its strings keep their capacity between events
  std::optional<Error> error_;
  std::uint64_t events_ = 0;  // SSE events seen
  bool done_ = false;         // the end marker arrived
  bool built_ = false;        // result_ was built
  bool finished_ = false;     // a finish reason arrived
  bool delivered_ = false;
  bool cancelled_ = false;
  bool recording_ = false;
  std::vector<StreamEvent> recorded_;
};

}  // namespace glmproxy::detail
