#pragma once

// The one way a blocking call waits for its answer: the answer's callback (run by the loop's
// driver, which may be this very thread when it leads the loop, or on the calling thread when
// the request is refused at once) fulfils a shared promise; the caller waits on its future.
// Shared, so a late callback never touches a promise the caller has already destroyed.

#include <atomic>
#include <future>
#include <memory>
#include <utility>

namespace glmproxy::detail {

template <class T>
class BlockingWait {
 public:
  BlockingWait() : state_(std::make_shared<State>()), future_(state_->promise.get_future()) {}

  /// The callback to hand over; call it exactly once.
  auto callback() const {
    return [s = state_](T value) {
      s->promise.set_value(std::move(value));
      s->ready.store(true, std::memory_order_release);
    };
  }
  /// Whether the answer is in (get() then returns at once). Cheap: asked every loop turn by a
  /// caller that leads the loop (Transport::lead).
  bool ready() const noexcept { return state_->ready.load(std::memory_order_acquire); }
  /// Waits for the answer.
  T get() { return future_.get(); }

 private:
  struct State {
    std::promise<T> promise;
    std::atomic<bool> ready{false};
  };
  std::shared_ptr<State> state_;
  std::future<T> future_;
};

}  // namespace glmproxy::detail
