// The in-memory ConcurrencyLimiter (AimdLimiter) through the interface, as the admission queue
// sees it: made from a Config by make_concurrency_limiter(), leases granted and given back.
// Time is passed in: nothing sleeps.

#include <catch2/catch.hpp>
#include <chrono>
#include <memory>
#include <optional>
#include <vector>

#include "admission/concurrency_limiter.hpp"
#include "glmproxy/config.hpp"

using glmproxy::Config;
using glmproxy::detail::ConcurrencyLease;
using glmproxy::detail::ConcurrencyLimiter;
using glmproxy::detail::make_concurrency_limiter;
using namespace std::chrono_literals;
using Outcome = ConcurrencyLimiter::Outcome;

namespace {

const ConcurrencyLimiter::Clock::time_point t0 = ConcurrencyLimiter::Clock::time_point{} + 1000s;

std::unique_ptr<ConcurrencyLimiter> limiter(int model_concurrency, int pool = 10,
                                            std::chrono::milliseconds interval = 1000ms) {
  Config c;
  c.pool.max_connections = pool;
  c.admission.model_concurrency = model_concurrency;
  c.admission.increase_interval = interval;
  return make_concurrency_limiter(c);
}

std::vector<ConcurrencyLease> acquire(ConcurrencyLimiter& l, std::string_view model, int n) {
  std::vector<ConcurrencyLease> out;
  for (int i = 0; i < n; ++i) {
    auto lease = l.try_acquire(model, t0);
    REQUIRE(lease.has_value());
    out.push_back(*lease);
  }
  return out;
}

}  // namespace

TEST_CASE("in-memory limiter: each model's max is GLMPROXY_MODEL_CONCURRENCY, else the pool",
          "[concurrency_limiter]") {
  auto own = limiter(3, 10);
  CHECK(own->max_limit() == 3);
  CHECK(own->limit("glm-4.7") == 3);
  auto pool = limiter(0, 5);
  CHECK(pool->max_limit() == 5);
  CHECK(pool->limit("glm-4.7") == 5);
  CHECK(pool->decreases() == 0);
}

TEST_CASE("in-memory limiter: grants up to the limit per model, then denies until one is back",
          "[concurrency_limiter]") {
  auto l = limiter(2);
  const auto leases = acquire(*l, "a", 2);
  CHECK_FALSE(l->try_acquire("a", t0).has_value());
  // Models are independent, and the empty name has no limit.
  acquire(*l, "b", 2);
  acquire(*l, "", 50);
  l->release("a", leases[0], Outcome::Other, t0 + 1ms);
  CHECK(l->try_acquire("a", t0 + 1ms).has_value());
  CHECK_FALSE(l->try_acquire("a", t0 + 1ms).has_value());
  CHECK(l->limit("a") == 2);  // Other says nothing about concurrency
}

TEST_CASE("in-memory limiter: Overloaded halves the limit once per congestion event",
          "[concurrency_limiter]") {
  auto l = limiter(8);
  const auto before = acquire(*l, "m", 8);
  l->release("m", before[0], Outcome::Overloaded, t0 + 1ms);
  CHECK(l->limit("m") == 4);
  CHECK(l->decreases() == 1);
  // The others were granted before that decrease: the same event, no further cut.
  for (std::size_t i = 1; i < before.size(); ++i) {
    l->release("m", before[i], Outcome::Overloaded, t0 + 2ms);
  }
  CHECK(l->limit("m") == 4);
  CHECK(l->decreases() == 1);
  // Granted after it: a new event.
  const auto after = acquire(*l, "m", 4);
  CHECK_FALSE(l->try_acquire("m", t0 + 3ms).has_value());
  l->release("m", after[0], Outcome::Overloaded, t0 + 3ms);
  CHECK(l->limit("m") == 2);
  CHECK(l->decreases() == 2);
}

TEST_CASE("in-memory limiter: successes raise the limit one step per increase interval",
          "[concurrency_limiter]") {
  auto l = limiter(4, 10, 1000ms);
  l->release("m", acquire(*l, "m", 1)[0], Outcome::Overloaded, t0);
  REQUIRE(l->limit("m") == 2);
  // A full window of successes, but within the interval: no step.
  for (const auto& lease : acquire(*l, "m", 2))
    l->release("m", lease, Outcome::Success, t0 + 999ms);
  CHECK(l->limit("m") == 2);
  // Once the interval has passed, a success completes the window: one step up.
  l->release("m", acquire(*l, "m", 1)[0], Outcome::Success, t0 + 1000ms);
  CHECK(l->limit("m") == 3);
  // And one more step, back at the max.
  for (const auto& lease : acquire(*l, "m", 3)) l->release("m", lease, Outcome::Success, t0 + 2s);
  CHECK(l->limit("m") == 4);
  CHECK(l->decreases() == 1);
}
