#pragma once

// An incremental text/event-stream parser (WHATWG HTML, "Server-sent events", 9.2.6): bytes go in
// as they arrive, split anywhere; complete events come out. Each byte is scanned once; memory is
// bounded by the line and event caps. Internal (src/protocol/).

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "buffer/buffer_pool.hpp"
#include "glmproxy/error.hpp"

namespace glmproxy::detail {

/// Bytes readable past the end of SseEvent::data (for simdjson, which reads ahead).
inline constexpr std::size_t kSseDataPadding = 64;

/// One dispatched event. The views stay valid until the sink returns.
struct SseEvent {
  std::string_view type;  ///< the `event` field, "message" when there was none
  std::string_view data;  ///< the `data` lines joined with "\n"; kSseDataPadding more bytes
                          ///< after it are readable (and may be overwritten by the sink)
  std::string_view id;    ///< the last event ID (it persists across events, as the spec says)
};

/// Receives events from SseParser::feed(); return false to stop parsing.
class SseSink {
 public:
  virtual bool on_sse_event(const SseEvent& event) = 0;

 protected:
  ~SseSink() = default;
};

struct SseLimits {
  std::size_t max_line_bytes = 1u << 20;   ///< a longer line is a BadResponse
  std::size_t max_event_bytes = 8u << 20;  ///< more data in one event is a BadResponse
};

/// Thread safety: not thread-safe (one stream, one thread).
/// Example:
///   SseParser parser({}, &pool);
///   for (chunk : body) if (parser.feed(chunk, sink) != SseParser::Status::Ok) break;
///   parser.finish();  // an incomplete last event is discarded
class SseParser {
 public:
  enum class Status { Ok, Stopped, Failed };

  explicit SseParser(SseLimits limits = {}, BufferPool* pool = nullptr);

  /// Parses `chunk`, calling `sink` for each complete event. Failed: error() says why (a cap
  /// was passed); the parser stays failed. Stopped: the sink returned false; the rest of
  /// `chunk` is not parsed (the caller is expected to abandon the stream).
  Status feed(std::string_view chunk, SseSink& sink);

  /// End of stream: discards an incomplete event. True when there was one (data or a partial
  /// line not yet ended), i.e. the stream ended mid-event.
  bool finish() noexcept;

  /// Back to the start of a stream (BOM check included); keeps the buffers' storage.
  void reset() noexcept;
  /// Where the line and event buffers take their storage from (nullptr: the heap).
  void set_pool(BufferPool* pool) noexcept {
    line_.set_pool(pool);
    data_.set_pool(pool);
  }

  const Error& error() const noexcept { return *error_; }
  /// The last `retry` field's value in milliseconds, if any arrived.
  std::optional<std::uint64_t> retry_ms() const noexcept { return retry_ms_; }
  /// Bytes fed so far.
  std::uint64_t bytes() const noexcept { return bytes_; }

 private:
  // Returns false when the sink stopped or a cap was passed.
  bool process_line(std::string_view line, SseSink& sink);
  bool dispatch(SseSink& sink);
  Status fail(std::string message);

  SseLimits limits_;
  Buffer line_;  // a line cut by the end of a chunk
  Buffer data_;  // the data buffer of the event being built
  std::string type_;
  std::string id_;  // last event ID
  std::optional<std::uint64_t> retry_ms_;
  std::optional<Error> error_;
  std::uint64_t bytes_ = 0;
  std::uint8_t bom_seen_ = 0;  // bytes of a leading UTF-8 BOM matched so far (3 = done)
  bool at_start_ = true;       // no byte of the stream processed yet (BOM check pending)
  bool skip_lf_ = false;       // the last chunk ended with CR: a leading LF finishes that CRLF
};

}  // namespace glmproxy::detail
