#pragma once

// Single-flight: identical requests in flight at once share one upstream call. The first becomes
// the leader and sends; the others wait on its answer, and all get it (or the same error).

#include <cstdint>
#include <functional>
#include <mutex>
#include <unordered_map>
#include <utility>
#include <vector>

#include "cache/lru_cache.hpp"
#include "core/fan_out.hpp"

namespace glmproxy::detail {

/// Thread safety: thread-safe. Callbacks run on the thread that calls finish(), outside the
/// lock, exactly once each.
template <class R>
class SingleFlight {
 public:
  using Callback = std::function<void(R)>;

  /// True: the caller leads (sends, then calls finish(key, ...)); `on_done` is kept and called
  /// by finish() like the joiners'. False: an identical call is in flight and `on_done` joined it.
  bool lead_or_join(const CacheKey& key, Callback on_done) {
    std::lock_guard lock(mu_);
    auto [it, inserted] = flights_.try_emplace(key);
    it->second.push_back(std::move(on_done));
    if (inserted) {
      ++leaders_;
    } else {
      ++joined_;
    }
    return inserted;
  }

  /// Ends the flight: every waiting callback gets `result` (copies; the last one gets it moved).
  void finish(const CacheKey& key, R result) {
    std::vector<Callback> waiting;
    {
      std::lock_guard lock(mu_);
      auto it = flights_.find(key);
      if (it == flights_.end()) return;
      waiting = std::move(it->second);
      flights_.erase(it);
    }
    fan_out(waiting, std::move(result));
  }

  std::uint64_t leaders() const {
    std::lock_guard lock(mu_);
    return leaders_;
  }
  /// Requests that shared another request's upstream call.
  std::uint64_t joined() const {
    std::lock_guard lock(mu_);
    return joined_;
  }

 private:
  mutable std::mutex mu_;
  std::unordered_map<CacheKey, std::vector<Callback>, CacheKeyHash> flights_;
  std::uint64_t leaders_ = 0, joined_ = 0;
};

}  // namespace glmproxy::detail
