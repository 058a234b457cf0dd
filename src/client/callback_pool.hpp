#pragma once

// Where complete_async() callbacks run: the client's own small pool of threads
// (GLMPROXY_CALLBACK_THREADS), or the executor the application put in Config. Never the I/O
// thread, so a slow callback holds up only itself.

#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#include "glmproxy/error.hpp"

namespace glmproxy::detail {

/// Thread safety: thread-safe. post() from any thread; stop() from any thread but its own.
class CallbackPool {
 public:
  using Task = std::function<void()>;
  using Executor = std::function<void(Task)>;

  /// `executor` set: tasks go to it and no thread is started; otherwise `threads` threads.
  static Result<std::unique_ptr<CallbackPool>> create(int threads, Executor executor);
  ~CallbackPool();  ///< stop()
  CallbackPool(const CallbackPool&) = delete;
  CallbackPool& operator=(const CallbackPool&) = delete;

  /// Runs `task` exactly once, later, off the calling thread: on a pool thread, on the
  /// application's executor, or (when neither can take it: no memory, the executor threw, the
  /// pool stopped) on a short-lived thread; only if no thread can be started, here. Never throws;
  /// a task's own exception is swallowed.
  void post(Task task) noexcept;

  /// Runs every task still queued (and what they post meanwhile), then joins the threads.
  /// Idempotent. Tasks given to an application's executor are its to run.
  void stop() noexcept;

  /// True on one of this pool's own threads.
  bool on_own_thread() const noexcept;
  /// The tasks run on this pool's own threads (no application executor): they may use the
  /// client, which outlives them (stop() runs every queued task before the client goes).
  bool owns_threads() const noexcept { return !executor_; }

 private:
  CallbackPool() = default;
  void run_worker() noexcept;
  static void run(Task& task) noexcept;
  static void run_detached(Task task) noexcept;

  Executor executor_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Task> queue_;
  bool stopping_ = false;
  bool stopped_ = false;
  std::vector<std::thread> threads_;
};

}  // namespace glmproxy::detail
