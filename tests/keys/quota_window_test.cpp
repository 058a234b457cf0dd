// The rolling 5-hour token window.

#include "keys/quota_window.hpp"

#include <catch2/catch.hpp>
#include <chrono>

using glmproxy::detail::QuotaWindow;
using namespace std::chrono_literals;
using TimePoint = QuotaWindow::TimePoint;

namespace {
// 2026-01-01T00:02:00Z: two minutes into a bucket.
const TimePoint kStart = TimePoint(std::chrono::seconds(1'767'225'720));
}  // namespace

TEST_CASE("quota window: tokens count until their bucket is five hours old", "[quota]") {
  QuotaWindow w;
  w.add(kStart, 400);
  w.add(kStart + 1min, 400);
  CHECK(w.used(kStart + 2min) == 800);
  // kStart's bucket began 2 min before it: it leaves 4 h 58 min after kStart.
  CHECK(w.used(kStart + 4h + 57min) == 800);
  CHECK(w.used(kStart + 4h + 58min) == 0);
  CHECK(w.used(kStart + 5h) == 0);
}

TEST_CASE("quota window: buckets leave one by one", "[quota]") {
  QuotaWindow w;
  for (int i = 0; i < 6; ++i) w.add(kStart + i * 10min, 100);
  CHECK(w.used(kStart + 1h) == 600);
  CHECK(w.used(kStart + 5h) == 500);
  CHECK(w.used(kStart + 5h + 10min) == 400);
  CHECK(w.used(kStart + 5h + 55min) == 0);
}

TEST_CASE("quota window: time until below the limit", "[quota]") {
  QuotaWindow w;
  w.add(kStart, 400);
  w.add(kStart + 30min, 400);
  w.add(kStart + 60min, 400);
  const TimePoint now = kStart + 61min;
  CHECK_FALSE(w.time_until_below(now, 1300).has_value());
  auto wait = w.time_until_below(now, 1000);
  REQUIRE(wait.has_value());
  // The first 400 leave when kStart's bucket (which began at kStart - 2 min) is 5 h old.
  CHECK(*wait == (kStart - 2min + 5h) - now);
  auto longer = w.time_until_below(now, 400);  // all three must leave
  REQUIRE(longer.has_value());
  CHECK(*longer == (kStart - 2min + 60min + 5h) - now);
}

TEST_CASE("quota window: a long gap empties it, history can be loaded", "[quota]") {
  QuotaWindow w;
  w.add(kStart, 50);
  CHECK(w.used(kStart + 30h) == 0);
  w.add(kStart + 30h, 7);
  CHECK(w.used(kStart + 30h) == 7);
  QuotaWindow loaded;
  const TimePoint now = kStart + 3h;
  loaded.add_to_bucket(QuotaWindow::bucket_of(kStart), 100, now);
  loaded.add_to_bucket(QuotaWindow::bucket_of(kStart - 6h), 1000, now);  // too old: ignored
  CHECK(loaded.used(now) == 100);
  REQUIRE(loaded.oldest_use(now).has_value());
  CHECK(*loaded.oldest_use(now) == kStart - 2min);
  CHECK(loaded.buckets(now).size() == 1);
}

TEST_CASE("quota window: many adds stay O(1) and add up", "[quota]") {
  QuotaWindow w;
  std::int64_t expected = 0;
  for (int i = 0; i < 100'000; ++i) {
    const TimePoint t = kStart + std::chrono::seconds(i);  // ~27.8 hours
    w.add(t, 1);
    if (t > kStart + std::chrono::seconds(99'999) - 5h) ++expected;
  }
  const std::int64_t used = w.used(kStart + std::chrono::seconds(99'999));
  // Bucket granularity: a use counts for 4 h 55 min to 5 h.
  CHECK(used <= expected);
  CHECK(used >= expected - 300);
}

TEST_CASE("quota window: huge counts stop at INT64_MAX, negative ones add nothing", "[quota]") {
  constexpr std::int64_t kMax = INT64_MAX;
  QuotaWindow w;
  w.add(kStart, kMax);
  w.add(kStart, kMax);  // the same bucket twice
  CHECK(w.used(kStart) == kMax);
  w.add(kStart + 1h, kMax);
  w.add(kStart + 2h, 7);
  w.add(kStart + 2h, -1'000);
  w.add(kStart + 2h, INT64_MIN);
  CHECK(w.used(kStart + 2h) == kMax);
  // Until both saturated buckets have left, the window is full; the last one to leave is the
  // one an hour in.
  auto wait = w.time_until_below(kStart + 2h, 100);
  REQUIRE(wait);
  CHECK(*wait ==
        std::chrono::ceil<std::chrono::milliseconds>(
            QuotaWindow::bucket_start(QuotaWindow::bucket_of(kStart + 1h)) + 5h - (kStart + 2h)));
  CHECK(w.used(kStart + 4h + 58min) == kMax);  // the first bucket has left; the second is full
  CHECK(w.used(kStart + 5h + 58min) == 7);     // summed again, exact: only the 7 is left
  CHECK(w.buckets(kStart + 5h + 58min).size() == 1);
  CHECK_FALSE(w.time_until_below(kStart + 5h + 58min, 100));
  CHECK(w.used(kStart + 7h) == 0);
}
