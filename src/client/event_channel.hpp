#pragma once

// A stream's events on their way from the loop's driver (where the SSE body is parsed: the I/O
// thread, or the consumer itself while it drives the loop) to the thread that called stream(),
// which runs the caller's on_event: a slow consumer holds up only its own stream. Events are copied
// into slots that are reused (their strings keep their capacity), so a steady stream allocates
// nothing per event; what waits is bounded by the stream's reply cap (GLMPROXY_MAX_RESPONSE_BYTES),
// which counts every event's text.

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <functional>
#include <mutex>
#include <optional>
#include <utility>
#include <vector>

#include "glmproxy/error.hpp"
#include "glmproxy/response.hpp"
#include "transport/transport.hpp"

namespace glmproxy::detail {

/// Thread safety: push(), flush() and close() on the loop's driver, consume() on one consumer
/// thread; ready() and closed() from any thread.
class EventChannel {
 public:
  /// How consume() ended early, if it did.
  enum class Stop { None, Cancelled, Threw };

  /// I/O thread: queues a copy of `event`; false once the consumer wants no more. The consumer
  /// sees it at the next flush() (or close()).
  bool push(const StreamEvent& event) {
    if (cancel_.load(std::memory_order_acquire)) return false;
    std::lock_guard lock(mu_);
    if (ready_ < incoming_.size()) {
      incoming_[ready_] = event;  // reuses the slot's capacity
    } else {
      incoming_.push_back(event);
    }
    ++ready_;
    return true;
  }

  /// I/O thread, after a body chunk: wakes a waiting consumer if events are queued (once per
  /// chunk, not per event).
  void flush() noexcept {
    bool wake = false;
    {
      std::lock_guard lock(mu_);
      wake = consumer_waiting_ && ready_ > 0;
    }
    if (wake) cv_.notify_one();
  }

  /// I/O thread: the exchange was resolved; nothing is pushed after this.
  void close(Result<HttpResult> result) {
    bool wake = false;
    {
      std::lock_guard lock(mu_);
      result_.emplace(std::move(result));
      wake = consumer_waiting_;
    }
    if (wake) cv_.notify_one();
  }

  /// Events are waiting, or the exchange was resolved (what a consumer leading the loop stops
  /// at). Any thread.
  bool ready() {
    std::lock_guard lock(mu_);
    return ready_ > 0 || result_.has_value();
  }

  /// The exchange was resolved. Any thread.
  bool closed() {
    std::lock_guard lock(mu_);
    return result_.has_value();
  }

  /// The flag the stream's sink reads (BodySink::cancel_requested()).
  const std::atomic<bool>* cancel_flag() const noexcept { return &cancel_; }

  /// Consumer thread: runs `on_event` for each event in order until the exchange is resolved,
  /// and returns its result. When `on_event` returns false or throws, the stream is cancelled
  /// (`poke` wakes the transport to act on it at once), later events are dropped, and `*stop`
  /// says which; the result is still waited for, so the stream's slots are free on return.
  /// Before each wait, `drive` (if set) may carry the exchange on this thread (the consumer
  /// driving the transport's loop, Transport::lead_again) until there is something to take.
  Result<HttpResult> consume(const std::function<bool(const StreamEvent&)>& on_event,
                             const std::function<void()>& poke, Stop* stop,
                             const std::function<void()>& drive = nullptr) {
    *stop = Stop::None;
    for (;;) {
      std::size_t n = 0;
      {
        std::unique_lock lock(mu_);
        if (drive && ready_ == 0 && !result_.has_value()) {
          lock.unlock();
          drive();
          lock.lock();
        }
        consumer_waiting_ = true;
        cv_.wait(lock, [this] { return ready_ > 0 || result_.has_value(); });
        consumer_waiting_ = false;
        if (ready_ > 0) {
          n = ready_;
          ready_ = 0;
          if (*stop == Stop::None) {
            incoming_.swap(taken_);  // the producer goes on into the other set of slots
          } else {
            n = 0;  // cancelled: what still arrives is dropped
          }
        } else {
          return std::move(*result_);
        }
      }
      for (std::size_t i = 0; i < n; ++i) {
        bool go_on = false;
        try {
          go_on = on_event(taken_[i]);
        } catch (...) {
          *stop = Stop::Threw;
        }
        if (!go_on && *stop == Stop::None) *stop = Stop::Cancelled;
        if (*stop != Stop::None) {
          cancel_.store(true, std::memory_order_release);
          poke();
          break;
        }
      }
    }
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<StreamEvent> incoming_;  // [0, ready_) are waiting for the consumer
  std::vector<StreamEvent> taken_;     // the consumer's set, handed back at the next swap
  std::size_t ready_ = 0;
  bool consumer_waiting_ = false;
  std::optional<Result<HttpResult>> result_;
  std::atomic<bool> cancel_{false};
};

}  // namespace glmproxy::detail
