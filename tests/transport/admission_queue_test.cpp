// The admission queue against a ConcurrencyLimiter test double (no socket, no AIMD): what it
// asks of the interface (a lease per start; a denied transfer is held while others pass; every
// lease given back exactly once, with how its attempt ended) and what it reads for metrics.
// Time is passed in: nothing sleeps.

#include <catch2/catch.hpp>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "admission/concurrency_limiter.hpp"
#include "glmproxy/config.hpp"
#include "glmproxy/error.hpp"
#include "transport/admission_queue.hpp"
#include "transport/transfer.hpp"

using glmproxy::Config;
using glmproxy::Error;
using glmproxy::ErrorCode;
using glmproxy::detail::AdmissionQueue;
using glmproxy::detail::ConcurrencyLease;
using glmproxy::detail::ConcurrencyLimiter;
using glmproxy::detail::Transfer;
using glmproxy::detail::TransferPtr;
using glmproxy::detail::TransferState;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using Outcome = ConcurrencyLimiter::Outcome;

namespace {

const Clock::time_point t0 = Clock::time_point{} + 1000s;

// Grants every model but those in `deny`, keeps the books of what is out, and lowers a model's
// limit to `cut_to` on Overloaded. The queue owns it; the test keeps a reference.
class FakeLimiter final : public ConcurrencyLimiter {
 public:
  struct Released {
    std::string model;
    std::uint64_t token;
    Outcome outcome;
  };

  std::set<std::string, std::less<>> deny;
  int max = 7;
  int cut_to = 3;
  std::map<std::string, int, std::less<>> limits;  // models below max
  std::map<std::uint64_t, std::string> out;        // token -> model, granted and not back
  std::vector<std::string> acquired;               // models, in grant order
  std::vector<Released> released;
  int unknown_releases = 0;  // tokens never granted, or given back twice
  std::uint64_t cuts = 0;

  std::optional<ConcurrencyLease> try_acquire(std::string_view model, Clock::time_point) override {
    if (deny.count(model) != 0) return std::nullopt;
    const std::uint64_t token = next_++;
    out.emplace(token, std::string(model));
    acquired.emplace_back(model);
    return ConcurrencyLease{.token = token};
  }

  void release(std::string_view model, const ConcurrencyLease& lease, Outcome outcome,
               Clock::time_point) override {
    auto it = out.find(lease.token);
    if (it == out.end() || it->second != model) {
      ++unknown_releases;
      return;
    }
    out.erase(it);
    released.push_back({std::string(model), lease.token, outcome});
    if (outcome == Outcome::Overloaded) {
      limits[std::string(model)] = cut_to;
      ++cuts;
    } else if (outcome == Outcome::Success) {
      limits.erase(std::string(model));
    }
  }

  int limit(std::string_view model) const override {
    auto it = limits.find(model);
    return it == limits.end() ? max : it->second;
  }
  int max_limit() const noexcept override { return max; }
  std::uint64_t decreases() const noexcept override { return cuts; }

 private:
  std::uint64_t next_ = 100;
};

Config config() {
  Config c;
  c.pool.max_connections = 8;
  c.pool.acquire_timeout = 100ms;
  c.timeouts.total = 10s;
  c.admission.model_concurrency = 1;  // what the double ignores: it alone decides
  c.admission.breaker_failures = 2;
  c.admission.breaker_window = 10s;
  c.admission.breaker_cooldown = 1s;
  return c;
}

TransferPtr transfer(std::string model, std::string url = "http://upstream:8080/v4/chat") {
  auto t = std::make_unique<Transfer>();
  t->ex.model = std::move(model);
  t->ex.url = std::move(url);
  t->deadline = t0 + 10s;
  return t;
}

// The queue with the double, driven the way the driver does: admitted ones count as on the
// wire; the others' decisions are kept.
struct Harness {
  FakeLimiter* limiter;
  AdmissionQueue queue;
  std::vector<TransferPtr> wire;
  std::vector<AdmissionQueue::Decision> decisions;

  explicit Harness(const Config& c = config()) : Harness(c, std::make_unique<FakeLimiter>()) {}
  Harness(const Config& c, std::unique_ptr<FakeLimiter> fake)
      : limiter(fake.get()), queue(c, std::move(fake)) {}

  void admit(Clock::time_point now) {
    queue.admit(
        now, [this] { return static_cast<int>(wire.size()); },
        [this](AdmissionQueue::Decision d) {
          if (d.kind == AdmissionQueue::Decision::Kind::Admit) {
            wire.push_back(std::move(d.transfer));
          } else {
            decisions.push_back(std::move(d));
          }
        });
  }

  void end(std::size_t i, int status, Clock::time_point now, const Error* answer = nullptr) {
    Transfer& t = *wire.at(i);
    t.status = status;
    queue.on_attempt_end(t, {.answered = status > 0, .answer = answer}, now);
  }

  std::vector<std::string> wire_models() const {
    std::vector<std::string> out;
    for (const auto& t : wire) out.push_back(t->ex.model);
    return out;
  }
};

Error too_many() {
  Error e = glmproxy::make_error(ErrorCode::RateLimited, "too many", 429);
  e.upstream_code = "1302";
  return e;
}

}  // namespace

TEST_CASE("admission queue with a limiter double: a denied model is held, later ones pass",
          "[admission_queue]") {
  Harness h;
  h.limiter->deny.insert("m1");
  for (const char* model : {"m1", "m2", "m1", "m3"}) h.queue.push(transfer(model), t0);
  h.admit(t0);
  CHECK(h.wire_models() == std::vector<std::string>{"m2", "m3"});
  CHECK(h.queue.size() == 2);
  CHECK(h.decisions.empty());
  // Each admitted transfer holds the lease it was granted.
  REQUIRE(h.limiter->out.size() == 2);
  for (const auto& t : h.wire) {
    REQUIRE(t->lease.has_value());
    CHECK(h.limiter->out.at(t->lease->token) == t->ex.model);
  }
  // Asked again on the next pass: granted now, the held ones start in their order.
  h.limiter->deny.clear();
  h.admit(t0 + 1ms);
  CHECK(h.wire_models() == std::vector<std::string>{"m2", "m3", "m1", "m1"});
  CHECK(h.queue.empty());
  CHECK(h.limiter->acquired == std::vector<std::string>{"m2", "m3", "m1", "m1"});
}

TEST_CASE("admission queue with a limiter double: each lease goes back once, with its outcome",
          "[admission_queue]") {
  Harness h;
  for (int i = 0; i < 6; ++i) h.queue.push(transfer("m"), t0);
  h.admit(t0);
  REQUIRE(h.wire.size() == 6);
  std::vector<std::uint64_t> tokens;
  for (const auto& t : h.wire) tokens.push_back(t->lease.value().token);

  h.end(0, 200, t0 + 1ms);
  const Error busy = too_many();
  h.end(1, 429, t0 + 2ms, &busy);
  CHECK(h.wire[1]->free_retries == 1);
  h.end(2, 503, t0 + 3ms);
  h.queue.abandon(*h.wire[3], t0 + 4ms);  // never went on the wire
  // A stream answered while on the wire gives its lease back then; its attempt's end later
  // gives nothing back again.
  h.wire[4]->state = TransferState::ReadingOut;
  h.queue.release(*h.wire[4], Outcome::Success, t0 + 5ms);
  h.end(4, 200, t0 + 6ms);
  // A connection failure (no status) is Other; ending the same attempt twice releases once.
  h.end(5, 0, t0 + 7ms);
  h.end(5, 0, t0 + 8ms);

  CHECK(h.limiter->unknown_releases == 0);
  CHECK(h.limiter->out.empty());
  REQUIRE(h.limiter->released.size() == 6);
  const std::vector<Outcome> outcomes{Outcome::Success, Outcome::Overloaded, Outcome::Other,
                                      Outcome::Other,   Outcome::Success,    Outcome::Other};
  for (std::size_t i = 0; i < 6; ++i) {
    INFO("transfer " << i);
    CHECK(h.limiter->released[i].token == tokens[i]);
    CHECK(h.limiter->released[i].model == "m");
    CHECK(h.limiter->released[i].outcome == outcomes[i]);
    CHECK_FALSE(h.wire[i]->lease.has_value());
  }
}

TEST_CASE("admission queue with a limiter double: a rejected transfer holds no lease",
          "[admission_queue]") {
  Config c = config();
  c.pool.max_connections = 2;
  Harness h(c);
  // Past its total deadline: rejected without asking the limiter.
  TransferPtr late = transfer("late");
  late->deadline = t0 + 50ms;
  h.queue.push(std::move(late), t0);
  h.admit(t0 + 50ms);
  REQUIRE(h.decisions.size() == 1);
  CHECK(h.decisions[0].error.code == ErrorCode::Timeout);
  CHECK(h.limiter->acquired.empty());

  // An open breaker: the lease taken for the rejected transfer goes straight back.
  h.queue.push(transfer("a"), t0 + 50ms);
  h.queue.push(transfer("b"), t0 + 50ms);
  h.admit(t0 + 50ms);
  REQUIRE(h.wire.size() == 2);
  h.end(0, 0, t0 + 51ms);
  h.end(1, 503, t0 + 52ms);
  h.wire.clear();
  h.queue.push(transfer("c"), t0 + 53ms);
  h.admit(t0 + 53ms);
  REQUIRE(h.decisions.size() == 2);
  CHECK(h.decisions[1].error.upstream_code == "circuit_open");
  CHECK(h.limiter->acquired == std::vector<std::string>{"a", "b", "c"});
  REQUIRE(h.limiter->released.size() == 3);
  CHECK(h.limiter->released[2].model == "c");
  CHECK(h.limiter->released[2].outcome == Outcome::Other);
  CHECK(h.limiter->out.empty());
  CHECK(h.limiter->unknown_releases == 0);
}

TEST_CASE("admission queue with a limiter double: limits and counters come from the limiter",
          "[admission_queue]") {
  Harness h;
  CHECK(h.queue.stats().model_concurrency_max == 7);  // the double's, not the config's 1
  h.queue.push(transfer("m"), t0);
  h.queue.push(transfer("m"), t0);
  h.admit(t0);
  REQUIRE(h.wire.size() == 2);
  const Error busy = too_many();
  h.end(0, 429, t0 + 1ms, &busy);
  CHECK(h.queue.stats().concurrency_decreases == 1);
  CHECK(h.queue.stats().model_limits == std::map<std::string, int>{{"m", 3}});

  // A transfer the limiter holds expires naming the limit the limiter reports.
  h.limiter->deny.insert("m");
  h.queue.push(transfer("m"), t0 + 1ms);
  h.admit(t0 + 1ms);
  std::vector<AdmissionQueue::Decision> expired;
  h.queue.expire(t0 + 101ms, static_cast<int>(h.wire.size()),
                 [&](AdmissionQueue::Decision d) { expired.push_back(std::move(d)); });
  REQUIRE(expired.size() == 1);
  CHECK(expired[0].error.code == ErrorCode::PoolTimeout);
  CHECK_THAT(expired[0].error.message,
             Catch::Contains("model m held to 3 requests at once after the upstream said it had "
                             "too many (429/1302)"));

  // Back at the max: no longer published as held.
  h.end(1, 200, t0 + 102ms);
  CHECK(h.queue.stats().model_limits.empty());
  CHECK(h.queue.stats().concurrency_decreases == 1);
}
