#pragma once

// The one way a blocking call waits for its answer: the answer's callback (run on the I/O
// thread, or on the calling thread when the request is refused at once) fulfils a shared
// promise; the caller waits on its future. Shared, so a late callback never touches a promise
// the caller has already destroyed.

#include <future>
#include <memory>
#include <utility>

namespace glmproxy::detail {

template <class T>
class BlockingWait {
 public:
  BlockingWait() : promise_(std::make_shared<std::promise<T>>()), future_(promise_->get_future()) {}

  /// The callback to hand over; call it exactly once.
  auto callback() const {
    return [p = promise_](T value) { p->set_value(std::move(value)); };
  }
  /// Waits for the answer.
  T get() { return future_.get(); }

 private:
  std::shared_ptr<std::promise<T>> promise_;
  std::future<T> future_;
};

}  // namespace glmproxy::detail
