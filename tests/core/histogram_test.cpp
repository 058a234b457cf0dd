// The log-linear latency histogram.

#include "core/histogram.hpp"

#include <catch2/catch.hpp>
#include <chrono>
#include <thread>
#include <vector>

using glmproxy::detail::HistogramSnapshot;
using glmproxy::detail::LatencyHistogram;
using namespace std::chrono_literals;

TEST_CASE("histogram: every value lands in a bucket whose upper edge is within 25% above it",
          "[metrics]") {
  for (std::uint64_t us :
       {std::uint64_t{1}, std::uint64_t{2}, std::uint64_t{3}, std::uint64_t{7}, std::uint64_t{100},
        std::uint64_t{1023}, std::uint64_t{1024}, std::uint64_t{99'999}, std::uint64_t{5'000'000},
        std::uint64_t{60'000'000}}) {
    const int b = HistogramSnapshot::bucket_of(us);
    INFO(us);
    CHECK(HistogramSnapshot::upper_us(b) >= us);
    CHECK(static_cast<double>(HistogramSnapshot::upper_us(b)) <=
          static_cast<double>(us) * 1.25 + 1);
    if (b > 0) CHECK(HistogramSnapshot::upper_us(b - 1) <= us);
  }
  for (int i = 1; i < HistogramSnapshot::kBuckets; ++i) {
    CHECK(HistogramSnapshot::upper_us(i) >= HistogramSnapshot::upper_us(i - 1));
  }
}

TEST_CASE("histogram: quantiles, merging, concurrent recording", "[metrics]") {
  LatencyHistogram h;
  for (int i = 1; i <= 1000; ++i) h.record(std::chrono::microseconds(i * 100));  // 0.1..100 ms
  const HistogramSnapshot s = h.snapshot();
  CHECK(s.count == 1000);
  CHECK(s.sum_us == 100 * 1000 * 1001 / 2);
  const auto p50 = static_cast<double>(s.quantile_us(0.5));
  CHECK(p50 >= 50'000);
  CHECK(p50 <= 50'000 * 1.25);
  const auto p99 = static_cast<double>(s.quantile_us(0.99));
  CHECK(p99 >= 99'000);
  CHECK(p99 <= 99'000 * 1.25);
  HistogramSnapshot merged = s;
  merged += s;
  CHECK(merged.count == 2000);
  CHECK(merged.quantile_us(0.5) == s.quantile_us(0.5));

  LatencyHistogram shared;
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&shared] {
      for (int i = 0; i < 50'000; ++i) shared.record(std::chrono::microseconds(i % 1000));
    });
  }
  for (auto& t : threads) t.join();
  const HistogramSnapshot all = shared.snapshot();
  CHECK(all.count == 200'000);
  std::uint64_t total = 0;
  for (auto c : all.counts) total += c;
  CHECK(total == 200'000);
}

TEST_CASE("histogram: the windowed histogram keeps only the retention window", "[metrics]") {
  using glmproxy::detail::WindowedHistogram;
  using Clock = WindowedHistogram::Clock;
  const Clock::time_point t0{};
  WindowedHistogram w(3000ms, 1000ms);  // three 1-second intervals
  CHECK(w.window() == 3000ms);
  w.record(t0 + 100ms, 10ms, false, true);
  w.record(t0 + 1100ms, 20ms, true, false);
  w.record(t0 + 2100ms, 30ms, false, false);
  auto all = w.snapshot(t0 + 2500ms);
  CHECK(all.latency.count == 3);
  CHECK(all.errors == 1);
  CHECK(all.cache_hits == 1);
  // One interval later the first one has left the window; its slot is reused and cleared.
  w.record(t0 + 3100ms, 40ms, false, false);
  auto later = w.snapshot(t0 + 3500ms);
  CHECK(later.latency.count == 3);
  CHECK(later.cache_hits == 0);
  CHECK(later.latency.sum_us == 90'000);
  // Long after, nothing is left.
  CHECK(w.snapshot(t0 + 60s).latency.count == 0);
}
