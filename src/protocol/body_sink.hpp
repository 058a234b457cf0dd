#pragma once

// How the transport hands a streamed 2xx body to its consumer as it arrives (on the I/O thread),
// instead of buffering it. Here, below the transport, because the consumer is the protocol's
// stream parser (protocol/chat_stream.hpp) and the transport only calls it.

#include <optional>
#include <string_view>

#include "buffer/buffer_pool.hpp"
#include "glmproxy/error.hpp"

namespace glmproxy::detail {

/// Thread safety: not thread-safe; the transport calls it on its I/O thread only, and never
/// again once the exchange has been resolved.
class BodySink {
 public:
  enum class Action {
    Continue,  ///< keep reading
    Cancel,    ///< the consumer wants no more: resolve as Cancelled, let the connection go
    Fail,      ///< the body is broken or carries an error: see error()
    /// The protocol's end marker arrived ([DONE], message_stop): the reply is complete and the
    /// exchange is resolved now, whether or not the upstream closes the body soon.
    Finished,
  };

  virtual ~BodySink() = default;

  /// An attempt's 2xx response starts: forget anything an earlier attempt delivered into.
  /// `content_type` is the response's Content-Type header (may be empty).
  virtual void begin(BufferPool& pool, std::string_view content_type) = 0;
  virtual Action on_body(std::string_view chunk) = 0;
  /// The transfer completed without a transport error. nullopt: the body is complete; an
  /// Error: it was not (e.g. the stream ended before its end marker).
  virtual std::optional<Error> on_end() = 0;
  /// Why on_body() said Fail.
  virtual Error error() const = 0;
  /// True once anything reached the consumer: from then on the request is never sent again.
  virtual bool delivered() const noexcept = 0;
  /// The exchange is over (called on the I/O thread just before it is resolved): give pooled
  /// storage back to the pool now, as the sink itself may be destroyed on another thread.
  virtual void release() noexcept = 0;
  /// For messages: what has arrived so far ("312 bytes, 4 events").
  virtual std::string progress() const = 0;
  /// The consumer asked (from its own thread) for the stream to end; the transport reads this on
  /// its I/O thread after Transport::poke() and treats a true as on_body() returning Cancel.
  /// An override must be safe to call from the I/O thread while the consumer sets it.
  virtual bool cancel_requested() const noexcept { return false; }
};

}  // namespace glmproxy::detail
