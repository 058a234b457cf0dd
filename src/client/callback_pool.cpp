#include "client/callback_pool.hpp"

#include <pthread.h>

#include <fmt/format.h>

#include <atomic>
#include <memory>
#include <system_error>
#include <utility>

namespace glmproxy::detail {

namespace {
thread_local const CallbackPool* tls_pool = nullptr;  // the pool whose thread this is
}  // namespace

Result<std::unique_ptr<CallbackPool>> CallbackPool::create(int threads, Executor executor) try {
  std::unique_ptr<CallbackPool> pool(new CallbackPool());
  pool->executor_ = std::move(executor);
  if (pool->executor_) return pool;
  if (threads < 1) {
    return make_error(ErrorCode::InvalidConfig,
                      fmt::format("GLMPROXY_CALLBACK_THREADS must be at least 1, got {}", threads));
  }
  pool->threads_.reserve(static_cast<std::size_t>(threads));
  for (int i = 0; i < threads; ++i) {
    try {
      pool->threads_.emplace_back([p = pool.get()] { p->run_worker(); });
      // Named for debuggers and top (at most 15 characters); best effort.
      pthread_setname_np(pool->threads_.back().native_handle(), "glmproxy-cb");
    } catch (const std::system_error& e) {
      pool->stop();
      return make_error(ErrorCode::Internal, fmt::format("could not start callback thread {} of {} "
                                                         "(GLMPROXY_CALLBACK_THREADS): {}",
                                                         i + 1, threads, e.what()));
    }
  }
  return pool;
} catch (...) {
  return make_error(ErrorCode::Internal, "could not create the callback pool: out of memory");
}

CallbackPool::~CallbackPool() { stop(); }

void CallbackPool::run(Task& task) noexcept {
  try {
    if (task) task();
  } catch (...) {
    // The callback's own exception has nowhere to go; the pool goes on.
  }
}

void CallbackPool::run_detached(Task task) noexcept {
  try {
    auto owned = std::make_shared<Task>(std::move(task));
    try {
      std::thread([owned]() noexcept { run(*owned); }).detach();
    } catch (...) {
      run(*owned);  // no thread can be started: here, rather than never
    }
  } catch (...) {
    run(task);
  }
}

void CallbackPool::post(Task task) noexcept {
  if (executor_) {
    // Kept until one side takes it: the executor's task, or (when the executor throws) a
    // short-lived thread; whichever comes first runs it, the other finds it taken.
    struct Once {
      Task task;
      std::atomic<bool> taken{false};
    };
    std::shared_ptr<Once> once;
    try {
      once = std::make_shared<Once>();
      once->task = std::move(task);
    } catch (...) {
      return run_detached(std::move(task));  // no memory for the record: the task is whole
    }
    try {
      executor_([once] {
        if (!once->taken.exchange(true)) run(once->task);
      });
      return;
    } catch (...) {
    }
    if (once->taken.exchange(true)) return;  // the executor ran it before throwing
    run_detached(std::move(once->task));
    return;
  }
  {
    std::unique_lock lock(mu_);
    if (!stopped_) {
      try {
        queue_.push_back(std::move(task));
        lock.unlock();
        cv_.notify_one();
        return;
      } catch (...) {
        // No memory for the queue entry: the task (still whole) runs on a thread of its own.
      }
    }
  }
  run_detached(std::move(task));
}

void CallbackPool::run_worker() noexcept {
  tls_pool = this;
  std::unique_lock lock(mu_);
  for (;;) {
    cv_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
    if (queue_.empty()) return;  // stopping, and nothing is left
    Task task = std::move(queue_.front());
    queue_.pop_front();
    lock.unlock();
    run(task);
    task = nullptr;  // what it captured goes here, off the lock
    lock.lock();
  }
}

void CallbackPool::stop() noexcept {
  {
    std::lock_guard lock(mu_);
    if (stopping_) return;
    stopping_ = true;
  }
  cv_.notify_all();
  for (std::thread& t : threads_) {
    if (t.joinable()) t.join();
  }
  std::lock_guard lock(mu_);
  stopped_ = true;
  // Only without threads (an executor's pool) or when a thread could not start can tasks be left.
  while (!queue_.empty()) {
    Task task = std::move(queue_.front());
    queue_.pop_front();
    run_detached(std::move(task));
  }
}

bool CallbackPool::on_own_thread() const noexcept { return tls_pool == this; }

}  // namespace glmproxy::detail
