#pragma once

// The batching queue (BATCHING_ENABLED): requests wait until their batch is full
// (BATCH_MAX_SIZE) or its window (BATCH_WINDOW_MS, opened by the batch's first request — not a
// debounce) ends, then go out together. Requests are grouped by a compatibility key; a group is
// one batch. BATCH_MAX_QUEUE_SIZE bounds the requests the batching layer holds — waiting for their
// batch, or sent and not yet answered — so a slow upstream pushes back: one more is refused with
// QueueFull at once, never run later behind the caller's back.

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "glmproxy/config.hpp"
#include "glmproxy/error.hpp"

namespace glmproxy::detail {

struct BatchQueueStats {
  std::uint64_t batches = 0;     ///< batches flushed
  std::uint64_t items = 0;       ///< requests flushed in them
  std::uint64_t queue_full = 0;  ///< requests refused with QueueFull
  std::size_t queued = 0;        ///< waiting for their batch now
  std::size_t outstanding = 0;   ///< waiting or sent and not yet answered
};

/// Thread safety: thread-safe. `flush` runs on the queue's timer thread (window ends) or on the
/// pushing thread (a batch that became full), never under the queue's lock.
template <class Item>
class BatchQueue {
 public:
  using Clock = std::chrono::steady_clock;
  using Flush = std::function<void(std::vector<Item>)>;

  /// Requests held by the batching layer; whoever answers a flushed request decrements it (it is
  /// shared so that answers arriving after the queue is gone are harmless).
  using Outstanding = std::shared_ptr<std::atomic<std::size_t>>;

  /// `flush` sends a batch; `drop` gets what is still waiting when the queue is destroyed.
  BatchQueue(const BatchConfig& config, Outstanding outstanding, Flush flush, Flush drop)
      : config_(config),
        outstanding_(std::move(outstanding)),
        flush_(std::move(flush)),
        drop_(std::move(drop)) {
    thread_ = std::thread([this] { run(); });
  }

  ~BatchQueue() { stop(); }

  /// Hands what is still waiting to `drop` and ends the timer thread; push() refuses from now
  /// on (ShuttingDown). Idempotent.
  void stop() {
    std::map<std::string, Group> rest;
    {
      std::lock_guard lock(mu_);
      stopping_ = true;
      rest.swap(groups_);
      queued_ = 0;
    }
    cv_.notify_all();
    if (thread_.joinable()) thread_.join();
    for (auto& [key, group] : rest) drop_(std::move(group.items));
  }

  BatchQueue(const BatchQueue&) = delete;
  BatchQueue& operator=(const BatchQueue&) = delete;

  /// Queues `item` in batch `group` (moving from it). QueueFull (naming BATCH_MAX_QUEUE_SIZE)
  /// when the queue is full, or ShuttingDown: `item` is then left as it was, for the caller to
  /// answer.
  Result<void> push(std::string group, Item&& item) {
    std::vector<Item> full;
    {
      std::lock_guard lock(mu_);
      if (stopping_) return make_error(ErrorCode::ShuttingDown, "the client is shutting down");
      if (outstanding_->load() >= config_.max_queue_size) {
        ++queue_full_;
        return make_error(ErrorCode::QueueFull,
                          "the batch queue is full (BATCH_MAX_QUEUE_SIZE=" +
                              std::to_string(config_.max_queue_size) +
                              " requests waiting or unanswered); the request was not sent");
      }
      outstanding_->fetch_add(1);
      auto [it, opened] = groups_.try_emplace(group);
      Group& g = it->second;
      if (opened) g.deadline = Clock::now() + config_.window;  // the window opens now
      g.items.push_back(std::move(item));
      ++queued_;
      if (g.items.size() >= config_.max_size) {
        full = std::move(g.items);
        groups_.erase(it);
        queued_ -= full.size();
        ++batches_;
        items_ += full.size();
      } else if (opened) {
        cv_.notify_one();  // a new deadline for the timer thread
      }
    }
    if (!full.empty()) flush_(std::move(full));
    return {};
  }

  BatchQueueStats stats() const {
    std::lock_guard lock(mu_);
    return BatchQueueStats{batches_, items_, queue_full_, queued_, outstanding_->load()};
  }

 private:
  struct Group {
    Clock::time_point deadline;
    std::vector<Item> items;
  };

  void run() {
    std::unique_lock lock(mu_);
    while (!stopping_) {
      if (groups_.empty()) {
        cv_.wait(lock);
        continue;
      }
      auto next = groups_.begin()->second.deadline;
      for (const auto& [key, g] : groups_) next = std::min(next, g.deadline);
      if (Clock::now() < next) {
        cv_.wait_until(lock, next);
        continue;
      }
      std::vector<std::vector<Item>> due;
      const auto now = Clock::now();
      for (auto it = groups_.begin(); it != groups_.end();) {
        if (it->second.deadline <= now) {
          queued_ -= it->second.items.size();
          ++batches_;
          items_ += it->second.items.size();
          due.push_back(std::move(it->second.items));
          it = groups_.erase(it);
        } else {
          ++it;
        }
      }
      lock.unlock();
      for (auto& batch : due) flush_(std::move(batch));
      lock.lock();
    }
  }

  const BatchConfig config_;
  const Outstanding outstanding_;
  const Flush flush_;
  const Flush drop_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::map<std::string, Group> groups_;  // guarded by mu_
  std::size_t queued_ = 0;               // guarded by mu_
  std::uint64_t batches_ = 0, items_ = 0, queue_full_ = 0;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace glmproxy::detail
