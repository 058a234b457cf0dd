#pragma once

// What one measured step of glmproxy-bench is, and what it produces.

#include <atomic>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "load/histogram.hpp"

namespace glmproxy::bench {

enum class Workload { Chat, Stream, Cache, Coalesce, Embed };

inline constexpr Workload kAllWorkloads[] = {Workload::Chat, Workload::Stream, Workload::Cache,
                                             Workload::Coalesce, Workload::Embed};

inline std::string_view to_string(Workload w) {
  switch (w) {
    case Workload::Chat:
      return "chat";
    case Workload::Stream:
      return "stream";
    case Workload::Cache:
      return "cache";
    case Workload::Coalesce:
      return "coalesce";
    case Workload::Embed:
      return "embed";
  }
  return "?";
}

/// The upstream's own counters (GET /__mock/stats, or MockUpstream::stats() in-process).
struct MockCounters {
  std::uint64_t connections = 0;  ///< connections accepted
  std::uint64_t requests = 0;     ///< API requests (control requests not counted)
};

/// Bounds of one step: it ends at whichever comes first (requests == 0: no request bound).
struct Limits {
  double seconds = 3.0;
  std::uint64_t requests = 0;
};

/// Everything a runner needs besides its own parameters.
struct Context {
  std::string base_url;  ///< OpenAI-compatible base, e.g. http://127.0.0.1:8080/api/paas/v4
  /// The upstream's counters now; nullopt when it has no stats endpoint.
  std::function<std::optional<MockCounters>()> counters;
  Limits limits;
  Limits warmup{0.3, 200};
  double drain_seconds = 10;  ///< how long a step waits for requests still out after its end
  long request_timeout_ms = 20'000;
  std::size_t open_workers = 128;  ///< open loop, stream/embed: threads making blocking calls
};

/// The result of one step: one client, one workload, one concurrency or rate.
struct RunResult {
  std::string workload;
  std::string mode;    ///< "closed" (fixed concurrency) or "open" (fixed rate)
  std::string client;  ///< "glmproxy", "curl-easy", "curl-multi"
  std::string api;     ///< how it was driven, e.g. "complete_async()", "curl_multi, 32 handles"
  /// glmproxy closed loop: "threads" (N threads making blocking calls; one at concurrency 1),
  /// "callback" (complete_async(), the next sent from the callback), "feeder" (complete_async()
  /// fed by one thread), "bursts" (coalesce); "open" for open loop; "" for the baselines.
  std::string driver;
  std::string pinning;  ///< "pinned" or "unpinned": how the tool and the mock ran (set by main)
  std::string loadavg;  ///< /proc/loadavg (1, 5, 15 minutes) when the step started
  int concurrency = 0;
  double rate = 0;  ///< open loop: requests per second intended
  std::uint64_t requests = 0, errors = 0;
  std::string first_error;
  double seconds = 0;  ///< measured phase, wall time
  Histogram latency;
  bool has_ttft = false;
  Histogram ttft;
  std::optional<std::uint64_t> connections_opened;  ///< during the measured phase
  std::optional<std::uint64_t> connections_step;    ///< during the whole step, warm-up included
  std::optional<std::uint64_t> upstream_calls;      ///< upstream API requests, measured phase
  std::optional<std::uint64_t> client_upstream;     ///< metrics().upstream_requests delta
  double cpu_seconds = 0;
  long peak_rss_kib = 0;
  std::int64_t rss_bytes = 0;
  std::vector<std::pair<std::string, double>> extra;  ///< workload-specific figures

  void fail(std::string_view message) {
    ++errors;
    if (first_error.empty()) first_error = std::string(message);
  }
};

/// Marks the measured phase of a step: upstream counters, CPU time and the clock at its start
/// and end. Constructed before the warm-up (so the step's connections are counted too).
class Phase {
 public:
  explicit Phase(const Context& ctx) : ctx_(ctx), step_(ctx.counters()) {}

  void begin() {
    start_counters_ = ctx_.counters();
    cpu_ = process_cpu_seconds();
    start_ = Clock::now();
  }
  Clock::time_point start() const noexcept { return start_; }

  /// Fills the step-level fields of `r` (seconds from begin() to now unless `end` is given).
  void end(RunResult& r, std::optional<Clock::time_point> end = std::nullopt) {
    const auto stop = end.value_or(Clock::now());
    r.seconds = std::chrono::duration<double>(stop - start_).count();
    r.cpu_seconds = process_cpu_seconds() - cpu_;
    const auto now = ctx_.counters();
    if (now && start_counters_) {
      r.connections_opened = now->connections - start_counters_->connections;
      r.upstream_calls = now->requests - start_counters_->requests;
    }
    if (now && step_) r.connections_step = now->connections - step_->connections;
    r.peak_rss_kib = peak_rss_kib();
    r.rss_bytes = rss_bytes();
  }

 private:
  const Context& ctx_;
  std::optional<MockCounters> step_, start_counters_;
  double cpu_ = 0;
  Clock::time_point start_{};
};

inline Clock::time_point after(Clock::time_point t, double seconds) {
  return t + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
}

/// Unique request numbers for the whole process, so no two steps send the same prompt.
inline std::uint64_t next_request_id() {
  static std::atomic<std::uint64_t> next{1};
  return next.fetch_add(1, std::memory_order_relaxed);
}

/// The prompts every client sends: glmproxy and the raw libcurl baselines send the same text.
std::string chat_prompt(std::uint64_t id);   ///< distinct per id
std::string burst_prompt(std::uint64_t id);  ///< one per burst of identical requests
std::string embed_input(std::uint64_t id);   ///< distinct per id
inline constexpr std::string_view kCachePrompt = "glmproxy-bench cache: say hello.";

/// Request bodies as glmproxy writes them for the prompts above (OpenAI protocol, default
/// models glm-4.7 and embedding-3).
std::string chat_body(std::string_view prompt, bool stream);
std::string embed_body(std::string_view input);

/// Prints "  <label>: N requests, T s" to stderr every 2 s once a step has run longer than 2 s.
class Progress {
 public:
  explicit Progress(std::string label) : label_(std::move(label)), last_(Clock::now()) {}
  void tick(std::uint64_t done) {
    const auto now = Clock::now();
    if (now - last_ < std::chrono::seconds(2)) return;
    last_ = now;
    std::fprintf(stderr, "  %s: %llu requests, %.1f s\n", label_.c_str(),
                 static_cast<unsigned long long>(done),
                 std::chrono::duration<double>(now - begin_).count());
  }

 private:
  std::string label_;
  Clock::time_point begin_ = Clock::now();
  Clock::time_point last_;
};

/// Calls `send(intended)` `rate` times per second from now until `limits` say stop. A send that
/// is late happens at once, and its latency is counted from its intended time, so a stall
/// shows as the queue behind it (no coordinated omission). Returns how many were sent.
template <class Send>
std::uint64_t pace(double rate, const Limits& limits, Send&& send) {
  const auto t0 = Clock::now();
  const auto end = after(t0, limits.seconds);
  const std::chrono::duration<double> interval(1.0 / rate);
  for (std::uint64_t i = 0;; ++i) {
    if (limits.requests != 0 && i >= limits.requests) return i;
    const auto t =
        t0 + std::chrono::duration_cast<Clock::duration>(interval * static_cast<double>(i));
    if (t >= end) return i;
    std::this_thread::sleep_until(t);
    send(t);
  }
}

}  // namespace glmproxy::bench
