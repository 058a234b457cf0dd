#pragma once

// Internal to glmproxy-bench: what the glmproxy-side drivers (client_runs.cpp, open_loop.cpp)
// share — request builders, per-thread recording, the thread driver, one blocking call.

#include <algorithm>
#include <atomic>
#include <latch>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "glmproxy/glmproxy.hpp"
#include "load/run.hpp"

namespace glmproxy::bench {

inline ChatRequest chat_request(std::string prompt) {
  ChatRequest request;
  request.messages = {{"user", std::move(prompt)}};
  return request;
}

inline EmbeddingRequest embed_request(std::uint64_t id) {
  EmbeddingRequest request;
  request.input = {embed_input(id)};
  return request;
}

// What one recording thread (or one callback-driven loop) collects.
struct Slot {
  Histogram latency, ttft;
  std::uint64_t errors = 0, not_from_cache = 0;
  std::string first_error;
  std::atomic<std::uint64_t> done{0};  // read by the progress printer
  Clock::time_point finished{};

  void fail(const Error& e) {
    ++errors;
    if (first_error.empty()) first_error = e.describe();
  }
  void merge_into(RunResult& r) const {
    r.requests += done.load(std::memory_order_relaxed);
    r.errors += errors;
    if (r.first_error.empty()) r.first_error = first_error;
    r.latency.merge(latency);
    r.ttft.merge(ttft);
  }
};

// Runs `call(slot)` in `n` threads until `limits` (the request bound shared out among them);
// calls phase->begin() once every thread is ready. Returns when the last thread stopped.
template <class Call>
Clock::time_point run_threads(int n, const Limits& limits, Phase* phase, Progress* progress,
                              RunResult& r, std::uint64_t* not_from_cache, Call call) {
  std::vector<std::unique_ptr<Slot>> slots;
  for (int i = 0; i < n; ++i) slots.push_back(std::make_unique<Slot>());
  std::latch ready(n), go(1);
  Clock::time_point deadline{};  // written before `go` opens
  std::atomic<int> finished{0};
  std::vector<std::thread> threads;
  const auto count = static_cast<std::uint64_t>(n);
  for (int i = 0; i < n; ++i) {
    const auto index = static_cast<std::uint64_t>(i);
    const std::uint64_t quota =
        limits.requests == 0 ? std::numeric_limits<std::uint64_t>::max()
                             : limits.requests / count + (index < limits.requests % count ? 1 : 0);
    threads.emplace_back([&, i, quota] {
      Slot& s = *slots[static_cast<std::size_t>(i)];
      ready.count_down();
      go.wait();
      for (std::uint64_t k = 0; k < quota && Clock::now() < deadline; ++k) {
        call(s);
        s.done.store(k + 1, std::memory_order_relaxed);
      }
      s.finished = Clock::now();
      finished.fetch_add(1);
    });
  }
  ready.wait();
  if (phase != nullptr) phase->begin();
  deadline = after(Clock::now(), limits.seconds);
  go.count_down();
  while (finished.load() < n) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    if (progress != nullptr) {
      std::uint64_t done = 0;
      for (const auto& s : slots) done += s->done.load(std::memory_order_relaxed);
      progress->tick(done);
    }
  }
  Clock::time_point end{};
  for (auto& t : threads) t.join();
  for (const auto& s : slots) {
    s->merge_into(r);
    end = std::max(end, s->finished);
    if (not_from_cache != nullptr) *not_from_cache += s->not_from_cache;
  }
  return end;
}

// One blocking call of `workload` on `client`, recorded in `s`; latency counts from `intended`
// when given (open loop), else from the call. `fixed` is the cache workload's request.
void blocking_call(ProxyClient& client, Workload workload, Slot& s, const ChatRequest& fixed,
                   std::optional<Clock::time_point> intended = std::nullopt);

// metrics() before and after the measured phase: upstream calls as the client counts them, and
// what coalescing, the cache and batching did.
class MetricsDelta {
 public:
  void begin(const ProxyClient& client) { start_ = client.metrics(); }
  void end(const ProxyClient& client, Workload workload, RunResult& r) const;

 private:
  MetricsSnapshot start_;
};

/// A glmproxy RunResult with its identifying fields set.
RunResult new_result(Workload workload, const char* mode, int concurrency);

}  // namespace glmproxy::bench
