// AimdLimiter and CircuitBreaker: pure logic driven with explicit time points, so nothing sleeps.
// Ends with a simulation of an upstream that rejects more than 2 concurrent requests.

#include <catch2/catch.hpp>
#include <chrono>
#include <cstdint>
#include <queue>
#include <vector>

#include "admission/aimd_limiter.hpp"
#include "admission/circuit_breaker.hpp"

using glmproxy::detail::AimdLimiter;
using glmproxy::detail::AimdOptions;
using glmproxy::detail::BreakerOptions;
using glmproxy::detail::CircuitBreaker;
using namespace std::chrono_literals;

namespace {

using Outcome = AimdLimiter::Outcome;
using BState = CircuitBreaker::State;

AimdLimiter::Clock::time_point at(std::chrono::milliseconds ms) {
  return AimdLimiter::Clock::time_point{} + ms;
}

AimdOptions aimd_options(int max_limit = 10, int min_limit = 1,
                         std::chrono::milliseconds interval = 5000ms) {
  AimdOptions o;
  o.max_limit = max_limit;
  o.min_limit = min_limit;
  o.increase_interval = interval;
  return o;
}

// Starts n requests for key and returns their tickets.
std::vector<std::uint64_t> start(AimdLimiter& l, std::string_view key, int n) {
  std::vector<std::uint64_t> tickets;
  for (int i = 0; i < n; ++i) tickets.push_back(l.on_start(key));
  return tickets;
}

// Runs n requests one after the other, all succeeding at `now`.
void succeed(AimdLimiter& l, std::string_view key, int n, AimdLimiter::Clock::time_point now) {
  for (int i = 0; i < n; ++i) l.on_finish(key, l.on_start(key), Outcome::Success, now);
}

BreakerOptions breaker_options(int threshold = 3, std::chrono::milliseconds window = 1000ms,
                               std::chrono::milliseconds cooldown = 500ms) {
  BreakerOptions o;
  o.failure_threshold = threshold;
  o.failure_window = window;
  o.cooldown = cooldown;
  return o;
}

}  // namespace

TEST_CASE("aimd: unseen keys start at max_limit with nothing in flight") {
  AimdLimiter l(aimd_options());
  CHECK(l.limit("glm-4.6") == 10);
  CHECK(l.in_flight("glm-4.6") == 0);
  CHECK(l.can_start("glm-4.6"));
  CHECK(l.decreases() == 0);
}

TEST_CASE("aimd: can_start and in_flight follow starts and finishes") {
  AimdLimiter l(aimd_options(3));
  auto t = start(l, "m", 2);
  CHECK(l.in_flight("m") == 2);
  CHECK(l.can_start("m"));
  t.push_back(l.on_start("m"));
  CHECK(l.in_flight("m") == 3);
  CHECK_FALSE(l.can_start("m"));
  l.on_finish("m", t[0], Outcome::Other, at(1ms));
  CHECK(l.in_flight("m") == 2);
  CHECK(l.can_start("m"));
  l.on_finish("m", t[1], Outcome::Success, at(2ms));
  l.on_finish("m", t[2], Outcome::Success, at(3ms));
  CHECK(l.in_flight("m") == 0);
  CHECK(l.limit("m") == 3);
  // A stray finish for a key with nothing in flight changes nothing.
  l.on_finish("m", 0, Outcome::Overloaded, at(4ms));
  CHECK(l.in_flight("m") == 0);
  CHECK(l.limit("m") == 3);
}

TEST_CASE("aimd: a burst of overloaded answers halves the limit once") {
  AimdLimiter l(aimd_options(10));
  auto t = start(l, "m", 10);
  CHECK_FALSE(l.can_start("m"));
  for (auto ticket : t) l.on_finish("m", ticket, Outcome::Overloaded, at(100ms));
  CHECK(l.limit("m") == 5);
  CHECK(l.decreases() == 1);
  CHECK(l.in_flight("m") == 0);
}

TEST_CASE("aimd: overloaded from a request started after the decrease halves again") {
  AimdLimiter l(aimd_options(10));
  auto old_tickets = start(l, "m", 4);
  l.on_finish("m", old_tickets[0], Outcome::Overloaded, at(10ms));
  REQUIRE(l.limit("m") == 5);
  auto fresh = l.on_start("m");
  // Old requests ending overloaded, before and after the fresh one, still count once.
  l.on_finish("m", old_tickets[1], Outcome::Overloaded, at(20ms));
  CHECK(l.limit("m") == 5);
  l.on_finish("m", fresh, Outcome::Overloaded, at(30ms));
  CHECK(l.limit("m") == 2);
  l.on_finish("m", old_tickets[2], Outcome::Overloaded, at(40ms));
  l.on_finish("m", old_tickets[3], Outcome::Overloaded, at(50ms));
  CHECK(l.limit("m") == 2);
  CHECK(l.decreases() == 2);
}

TEST_CASE("aimd: the limit does not go below min_limit") {
  SECTION("min_limit 1") {
    AimdLimiter l(aimd_options(10, 1));
    for (int i = 0; i < 10; ++i) {
      l.on_finish("m", l.on_start("m"), Outcome::Overloaded, at(std::chrono::milliseconds(i)));
    }
    CHECK(l.limit("m") == 1);
    CHECK(l.decreases() == 3);  // 10 -> 5 -> 2 -> 1; at the floor nothing is lowered
    CHECK(l.can_start("m"));
  }
  SECTION("min_limit 3") {
    AimdLimiter l(aimd_options(10, 3));
    for (int i = 0; i < 5; ++i) {
      l.on_finish("m", l.on_start("m"), Outcome::Overloaded, at(std::chrono::milliseconds(i)));
    }
    CHECK(l.limit("m") == 3);
    CHECK(l.decreases() == 2);  // 10 -> 5 -> 3
  }
  SECTION("nonsense options are clamped") {
    AimdLimiter l(aimd_options(0, -2));
    CHECK(l.limit("m") == 1);
    l.on_finish("m", l.on_start("m"), Outcome::Overloaded, at(0ms));
    CHECK(l.limit("m") == 1);
  }
}

TEST_CASE("aimd: increase needs limit successes and the interval, one step at a time") {
  AimdLimiter l(aimd_options(10, 1, 5000ms));
  l.on_finish("m", l.on_start("m"), Outcome::Overloaded, at(1000ms));
  l.on_finish("m", l.on_start("m"), Outcome::Overloaded, at(1000ms));
  REQUIRE(l.limit("m") == 2);  // last change at 1000ms

  SECTION("successes without the interval do not increase") {
    succeed(l, "m", 50, at(5999ms));
    CHECK(l.limit("m") == 2);
    // Once the interval has passed, the next success is enough: the count is already there.
    succeed(l, "m", 1, at(6000ms));
    CHECK(l.limit("m") == 3);
  }
  SECTION("the interval without enough successes does not increase") {
    succeed(l, "m", 1, at(60000ms));
    CHECK(l.limit("m") == 2);
    succeed(l, "m", 1, at(60000ms));
    CHECK(l.limit("m") == 3);
  }
  SECTION("each step needs the new limit's successes and a new interval") {
    succeed(l, "m", 2, at(6000ms));
    REQUIRE(l.limit("m") == 3);
    succeed(l, "m", 10, at(10999ms));  // interval since the increase at 6000ms not passed
    CHECK(l.limit("m") == 3);
    succeed(l, "m", 1, at(11000ms));
    CHECK(l.limit("m") == 4);
    succeed(l, "m", 3, at(16000ms));  // 3 of the 4 needed
    CHECK(l.limit("m") == 4);
    succeed(l, "m", 1, at(16000ms));
    CHECK(l.limit("m") == 5);
  }
  SECTION("capped at max_limit") {
    auto now = 1000ms;
    for (int i = 0; i < 20; ++i) {
      now += 5000ms;
      succeed(l, "m", 20, at(now));
    }
    CHECK(l.limit("m") == 10);
  }
  SECTION("Other answers neither count as successes nor decrease") {
    for (int i = 0; i < 5; ++i) l.on_finish("m", l.on_start("m"), Outcome::Other, at(60000ms));
    CHECK(l.limit("m") == 2);
    CHECK(l.decreases() == 2);  // 10 -> 5 -> 2 before the sections
  }
}

TEST_CASE("aimd: a decrease restarts the increase clock and the success count") {
  AimdLimiter l(aimd_options(10, 1, 1000ms));
  auto t = start(l, "m", 3);
  l.on_finish("m", t[0], Outcome::Overloaded, at(0ms));
  REQUIRE(l.limit("m") == 5);
  succeed(l, "m", 4, at(2000ms));
  l.on_finish("m", l.on_start("m"), Outcome::Overloaded, at(2500ms));
  REQUIRE(l.limit("m") == 2);
  succeed(l, "m", 1, at(3000ms));  // would be the 5th success, but counting restarted
  CHECK(l.limit("m") == 2);
  succeed(l, "m", 5, at(3499ms));  // enough successes, interval since 2500ms not passed
  CHECK(l.limit("m") == 2);
  succeed(l, "m", 1, at(3500ms));
  CHECK(l.limit("m") == 3);
  l.on_finish("m", t[1], Outcome::Success, at(3500ms));
  l.on_finish("m", t[2], Outcome::Success, at(3500ms));
  CHECK(l.in_flight("m") == 0);
}

TEST_CASE("aimd: an empty key is unlimited and not counted") {
  AimdLimiter l(aimd_options(1));
  for (int i = 0; i < 100; ++i) {
    CHECK(l.can_start(""));
    l.on_start("");
  }
  CHECK(l.in_flight("") == 0);
  l.on_finish("", 0, Outcome::Overloaded, at(0ms));
  CHECK(l.limit("") == 1);
  CHECK(l.decreases() == 0);
}

TEST_CASE("aimd: keys are independent") {
  AimdLimiter l(aimd_options(4));
  auto a = start(l, "glm-4.6", 4);
  auto b = l.on_start("glm-4.5-air");
  CHECK_FALSE(l.can_start("glm-4.6"));
  CHECK(l.can_start("glm-4.5-air"));
  l.on_finish("glm-4.6", a[0], Outcome::Overloaded, at(0ms));
  CHECK(l.limit("glm-4.6") == 2);
  CHECK(l.limit("glm-4.5-air") == 4);
  // glm-4.5-air's generation is its own: this ticket is current there, and decreases it.
  l.on_finish("glm-4.5-air", b, Outcome::Overloaded, at(0ms));
  CHECK(l.limit("glm-4.5-air") == 2);
  CHECK(l.in_flight("glm-4.6") == 3);
  CHECK(l.in_flight("glm-4.5-air") == 0);
  CHECK(l.decreases() == 2);
}

namespace {

struct SimResult {
  int finished = 0, successes = 0, max_accepted = 0;
  int overloaded_first_burst = 0, overloaded_after = 0;
  std::int64_t ended_ms = 0;
};

// An upstream that accepts a request when fewer than 2 accepted ones are in progress and answers
// Overloaded otherwise. Each request lasts 50 simulated ms whatever the answer; new ones start
// whenever the limiter lets them. The first kFirstBurst requests are the opening burst.
constexpr int kFirstBurst = 10;
SimResult simulate(AimdLimiter& l, int requests) {
  struct Running {
    std::int64_t ends_ms;
    std::uint64_t ticket;
    bool accepted;
    int id;
  };
  auto later = [](const Running& a, const Running& b) {
    return a.ends_ms != b.ends_ms ? a.ends_ms > b.ends_ms : a.id > b.id;
  };
  std::priority_queue<Running, std::vector<Running>, decltype(later)> running(later);

  SimResult r;
  std::int64_t now_ms = 0;
  int started = 0, accepted_now = 0;
  while (r.finished < requests) {
    while (started < requests && l.can_start("m")) {
      const bool accepted = accepted_now < 2;
      if (accepted) r.max_accepted = std::max(r.max_accepted, ++accepted_now);
      running.push(Running{now_ms + 50, l.on_start("m"), accepted, started});
      ++started;
    }
    if (running.empty()) break;  // stalled: the caller's checks fail
    now_ms = running.top().ends_ms;
    while (!running.empty() && running.top().ends_ms == now_ms) {
      const Running done = running.top();
      running.pop();
      ++r.finished;
      if (done.accepted) {
        --accepted_now;
        ++r.successes;
      } else {
        ++(done.id < kFirstBurst ? r.overloaded_first_burst : r.overloaded_after);
      }
      l.on_finish("m", done.ticket, done.accepted ? Outcome::Success : Outcome::Overloaded,
                  at(std::chrono::milliseconds(now_ms)));
    }
  }
  r.ended_ms = now_ms;
  return r;
}

}  // namespace

TEST_CASE("aimd: simulated upstream that rejects more than 2 concurrent requests") {
  AimdLimiter l(aimd_options(10, 1, 5000ms));
  const SimResult r = simulate(l, 200);
  INFO("overloaded in first burst " << r.overloaded_first_burst << ", after " << r.overloaded_after
                                    << ", decreases " << l.decreases() << ", final limit "
                                    << l.limit("m") << ", ended at " << r.ended_ms << "ms");
  CHECK(r.finished == 200);
  CHECK(r.successes + r.overloaded_first_burst + r.overloaded_after == 200);
  CHECK(r.overloaded_first_burst == 8);  // 10 sent, 2 accepted
  CHECK(r.overloaded_after <= 5);
  CHECK(l.decreases() <= 5);
  CHECK(r.max_accepted == 2);
  CHECK(l.in_flight("m") == 0);
  CHECK(l.limit("m") >= 1);
  CHECK(l.limit("m") <= 3);
}

TEST_CASE("aimd: simulated upstream over a long run: probing upwards costs little") {
  // Long enough for several increase intervals: every probe to 3 costs one Overloaded answer.
  AimdLimiter l(aimd_options(10, 1, 5000ms));
  const SimResult r = simulate(l, 5000);
  INFO("overloaded after the first burst " << r.overloaded_after << ", decreases " << l.decreases()
                                           << ", ended at " << r.ended_ms << "ms");
  CHECK(r.finished == 5000);
  CHECK(r.overloaded_after >= 2);   // it did probe upwards again
  CHECK(r.overloaded_after <= 50);  // under 1%
  // Throughput stays near the upstream's 2 per 50 ms: at least 1 per 50 ms on average.
  CHECK(r.ended_ms <= 5000 * 50);
  CHECK(l.in_flight("m") == 0);
}

TEST_CASE("breaker: opens after threshold consecutive failures within the window") {
  CircuitBreaker b(breaker_options(3, 1000ms, 500ms));
  CHECK(b.state("u", at(0ms)) == BState::Closed);
  CHECK(b.allow("u", at(0ms)));
  b.on_failure("u", at(0ms));
  b.on_failure("u", at(400ms));
  CHECK(b.state("u", at(400ms)) == BState::Closed);
  CHECK(b.consecutive_failures("u") == 2);
  CHECK(b.allow("u", at(400ms)));
  b.on_failure("u", at(1000ms));  // exactly at the window's end still counts
  CHECK(b.state("u", at(1000ms)) == BState::Open);
  CHECK(b.consecutive_failures("u") == 3);
  CHECK(b.opened() == 1);
  CHECK_FALSE(b.allow("u", at(1000ms)));
}

TEST_CASE("breaker: a success in between resets the count") {
  CircuitBreaker b(breaker_options(3));
  b.on_failure("u", at(0ms));
  b.on_failure("u", at(10ms));
  b.on_success("u");
  CHECK(b.consecutive_failures("u") == 0);
  b.on_failure("u", at(20ms));
  b.on_failure("u", at(30ms));
  CHECK(b.state("u", at(30ms)) == BState::Closed);
  CHECK(b.allow("u", at(30ms)));
  b.on_failure("u", at(40ms));
  CHECK(b.state("u", at(40ms)) == BState::Open);
}

TEST_CASE("breaker: failures spread wider than the window do not open it") {
  CircuitBreaker b(breaker_options(3, 1000ms));
  for (int i = 0; i < 20; ++i) {
    b.on_failure("u", at(std::chrono::milliseconds(600 * i)));
    CHECK(b.state("u", at(std::chrono::milliseconds(600 * i))) == BState::Closed);
    CHECK(b.consecutive_failures("u") <= 2);
  }
  CHECK(b.opened() == 0);
}

TEST_CASE("breaker: open refuses with retry_after the remaining cooldown") {
  CircuitBreaker b(breaker_options(1, 1000ms, 500ms));
  b.on_failure("u", at(100ms));
  std::chrono::milliseconds retry{-1};
  CHECK_FALSE(b.allow("u", at(100ms), &retry));
  CHECK(retry == 500ms);
  CHECK_FALSE(b.allow("u", at(450ms), &retry));
  CHECK(retry == 150ms);
  // Rounded up, so that retrying after retry_after finds the cooldown over.
  CHECK_FALSE(b.allow("u", at(450ms) + std::chrono::microseconds(300), &retry));
  CHECK(retry == 150ms);
  CHECK_FALSE(b.allow("u", at(599ms)));  // retry_after is optional
  // A failure from a request sent before it opened does not extend the cooldown.
  b.on_failure("u", at(590ms));
  CHECK(b.opened() == 1);
  CHECK(b.state("u", at(599ms)) == BState::Open);
  CHECK(b.state("u", at(600ms)) == BState::HalfOpen);
}

TEST_CASE("breaker: after the cooldown exactly one probe goes") {
  CircuitBreaker b(breaker_options(2, 1000ms, 500ms));
  b.on_failure("u", at(0ms));
  b.on_failure("u", at(0ms));
  REQUIRE(b.state("u", at(0ms)) == BState::Open);
  CHECK(b.allow("u", at(500ms)));
  CHECK(b.state("u", at(500ms)) == BState::HalfOpen);
  std::chrono::milliseconds retry{-1};
  for (int i = 0; i < 10; ++i) {
    CHECK_FALSE(b.allow("u", at(510ms), &retry));
    CHECK(retry == 0ms);
  }

  SECTION("probe success closes") {
    b.on_success("u");
    CHECK(b.state("u", at(520ms)) == BState::Closed);
    CHECK(b.consecutive_failures("u") == 0);
    CHECK(b.allow("u", at(520ms)));
    CHECK(b.allow("u", at(520ms)));
    // The count starts from zero again.
    b.on_failure("u", at(530ms));
    CHECK(b.state("u", at(530ms)) == BState::Closed);
  }
  SECTION("probe failure reopens for a full cooldown") {
    b.on_failure("u", at(700ms));
    CHECK(b.state("u", at(700ms)) == BState::Open);
    CHECK(b.opened() == 2);
    CHECK_FALSE(b.allow("u", at(700ms), &retry));
    CHECK(retry == 500ms);
    CHECK_FALSE(b.allow("u", at(1199ms)));
    CHECK(b.allow("u", at(1200ms)));
    CHECK_FALSE(b.allow("u", at(1200ms)));
  }
  SECTION("an abandoned probe lets the next one go at once") {
    b.on_abandon("u");
    CHECK(b.allow("u", at(520ms)));
    CHECK_FALSE(b.allow("u", at(520ms)));
  }
  SECTION("a probe silent for a whole cooldown is presumed lost") {
    CHECK_FALSE(b.allow("u", at(999ms)));
    CHECK(b.allow("u", at(1000ms)));
    CHECK_FALSE(b.allow("u", at(1000ms)));
  }
}

TEST_CASE("breaker: threshold 0 disables it") {
  CircuitBreaker b(breaker_options(0, 1000ms, 500ms));
  for (int i = 0; i < 100; ++i) b.on_failure("u", at(0ms));
  CHECK(b.allow("u", at(0ms)));
  CHECK(b.state("u", at(0ms)) == BState::Closed);
  CHECK(b.consecutive_failures("u") == 0);
  CHECK(b.opened() == 0);
}

TEST_CASE("breaker: opened counts openings across keys, and keys are independent") {
  CircuitBreaker b(breaker_options(2, 1000ms, 500ms));
  const char* a = "https://open.bigmodel.cn:443";
  const char* z = "https://api.z.ai:443";
  b.on_failure(a, at(0ms));
  b.on_failure(z, at(0ms));
  b.on_failure(a, at(10ms));
  CHECK(b.state(a, at(10ms)) == BState::Open);
  CHECK(b.state(z, at(10ms)) == BState::Closed);
  CHECK_FALSE(b.allow(a, at(10ms)));
  CHECK(b.allow(z, at(10ms)));
  CHECK(b.consecutive_failures(z) == 1);
  b.on_success(a);  // a success on one key leaves the other's count alone
  CHECK(b.consecutive_failures(z) == 1);
  b.on_failure(z, at(20ms));
  CHECK(b.state(z, at(20ms)) == BState::Open);
  CHECK(b.state(a, at(20ms)) == BState::Closed);
  CHECK(b.opened() == 2);
}
