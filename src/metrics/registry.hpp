#pragma once

// Request metrics recorded on the hot path (relaxed atomics, no locks) and their Prometheus text
// exposition. METRICS_ENABLED=false makes every record call return at once.

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <string>

#include "core/histogram.hpp"
#include "glmproxy/error.hpp"
#include "glmproxy/metrics.hpp"
#include "glmproxy/response.hpp"

namespace glmproxy::detail {

/// Which API a request used (a label).
enum class Api : std::uint8_t { OpenAI, Anthropic, Embeddings };
/// How a request ended (a label).
enum class Outcome : std::uint8_t { Ok, CacheHit, Error };

/// The label values: "openai", "anthropic", "embeddings"; "ok", "cache_hit", "error" (also the
/// profiler's names for them).
std::string_view api_name(Api api) noexcept;
std::string_view outcome_name(Outcome outcome) noexcept;

/// Thread safety: thread-safe.
class Metrics {
 public:
  using Clock = std::chrono::steady_clock;
  using ClockFn = std::function<Clock::time_point()>;

  /// `retention` and `interval`: METRICS_RETENTION_MS and METRICS_AGGREGATION_INTERVAL_MS;
  /// `clock`: Config::clock (empty: steady_clock::now).
  Metrics(bool enabled, std::chrono::milliseconds retention, std::chrono::milliseconds interval,
          ClockFn clock)
      : enabled_(enabled), recent_(retention, interval), clock_(std::move(clock)) {}
  bool enabled() const noexcept { return enabled_; }

  /// A request resolved, `latency` after the call began.
  void request_done(Api api, Outcome outcome, const Error* error,
                    std::chrono::microseconds latency) noexcept;
  /// The tokens of one upstream call (each count is non-negative: the parsers made it so).
  void tokens(const Usage& usage) noexcept;
  void time_to_first_token(std::chrono::microseconds d) noexcept;

  /// The requests of the retention window, at now.
  WindowedHistogram::Window recent() const { return recent_.snapshot(now()); }
  std::chrono::milliseconds window() const noexcept { return recent_.window(); }

  HistogramSnapshot latency(Api api) const noexcept {
    return latency_[static_cast<std::size_t>(api)].snapshot();
  }
  std::uint64_t requests(Api api, Outcome outcome) const noexcept {
    return requests_[index(api, outcome)].load(std::memory_order_relaxed);
  }
  std::uint64_t errors(ErrorCode code) const noexcept {
    const auto i = static_cast<std::size_t>(code);
    return i < kCodes ? errors_[i].load(std::memory_order_relaxed) : 0;
  }
  std::uint64_t prompt_tokens() const noexcept {
    return prompt_tokens_.load(std::memory_order_relaxed);
  }
  std::uint64_t completion_tokens() const noexcept {
    return completion_tokens_.load(std::memory_order_relaxed);
  }
  std::uint64_t cached_prompt_tokens() const noexcept {
    return cached_prompt_tokens_.load(std::memory_order_relaxed);
  }
  std::uint64_t cache_creation_tokens() const noexcept {
    return cache_creation_tokens_.load(std::memory_order_relaxed);
  }
  std::uint64_t reasoning_tokens() const noexcept {
    return reasoning_tokens_.load(std::memory_order_relaxed);
  }

  /// The request counters of `m` (requests), from these metrics.
  void fill(MetricsSnapshot& m) const;

  /// Prometheus text exposition 0.0.4 of these metrics plus the subsystem counters in `m` and
  /// the transport's pool histogram `acquire_wait`.
  std::string prometheus_text(const MetricsSnapshot& m,
                              const HistogramSnapshot& acquire_wait) const;

 private:
  static constexpr std::size_t kApis = 3, kOutcomes = 3, kCodes = 15;
  static_assert(static_cast<std::size_t>(ErrorCode::Internal) + 1 == kCodes);
  static std::size_t index(Api a, Outcome o) noexcept {
    return static_cast<std::size_t>(a) * kOutcomes + static_cast<std::size_t>(o);
  }

  Clock::time_point now() const { return clock_ ? clock_() : Clock::now(); }

  const bool enabled_;
  WindowedHistogram recent_;
  ClockFn clock_;
  std::array<std::atomic<std::uint64_t>, kApis * kOutcomes> requests_{};
  std::array<std::atomic<std::uint64_t>, kCodes> errors_{};
  std::array<LatencyHistogram, kApis> latency_;
  LatencyHistogram ttft_;
  std::atomic<std::uint64_t> prompt_tokens_{0}, completion_tokens_{0};
  std::atomic<std::uint64_t> cached_prompt_tokens_{0}, cache_creation_tokens_{0},
      reasoning_tokens_{0};
};

}  // namespace glmproxy::detail
