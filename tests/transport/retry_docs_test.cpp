// What docs/transport.md says about retries, timeouts and errors, one test per statement,
// against the mock upstream (the backoff decision also on its own). Each test quotes what it
// checks; docs/transport.md's table lists them.

#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <ctime>
#include <future>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "glmproxy/mock/mock_upstream.hpp"
#include "glmproxy/proxy_client.hpp"
#include "support/docs_support.hpp"
#include "support/mock_client.hpp"
#include "transport/backoff.hpp"

using glmproxy::ChatRequest;
using glmproxy::ChatResponse;
using glmproxy::Config;
using glmproxy::ErrorCode;
using glmproxy::Protocol;
using glmproxy::ProxyClient;
using glmproxy::Result;
using glmproxy::mock::Fault;
using glmproxy::mock::MockUpstream;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

using test_support::config_for;
using test_support::eventually;
using test_support::hello;
using test_support::make_client;
using test_support::numbered;
using test_support::start_mock;

namespace {

std::string describe(const Result<ChatResponse>& r) { return r ? "ok" : r.error().describe(); }

// An HTTP date (RFC 9110 IMF-fixdate) `ahead` from now.
std::string http_date(std::chrono::seconds ahead) {
  const std::time_t t =
      std::chrono::system_clock::to_time_t(std::chrono::system_clock::now() + ahead);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[64];
  std::strftime(buf, sizeof buf, "%a, %d %b %Y %H:%M:%S GMT", &tm);
  return buf;
}

}  // namespace

// --- retries ---------------------------------------------------------------------------

// transport.md, Retries: "Otherwise it is full-jitter exponential backoff: uniform in
// [0, min(GLMPROXY_RETRY_MAX_DELAY_MS, GLMPROXY_RETRY_BASE_DELAY_MS × 2^(attempt−1))]."
TEST_CASE("docs: the backoff is full jitter, uniform in [0, min(max, base * 2^(attempt-1))]",
          "[docs][retry]") {
  glmproxy::RetryConfig retry;
  retry.base_delay = 100ms;
  retry.max_delay = 1000ms;
  using glmproxy::detail::backoff_cap;
  CHECK(backoff_cap(retry, 1) == 100ms);
  CHECK(backoff_cap(retry, 2) == 200ms);
  CHECK(backoff_cap(retry, 3) == 400ms);
  CHECK(backoff_cap(retry, 4) == 800ms);
  CHECK(backoff_cap(retry, 5) == 1000ms);   // the cap
  CHECK(backoff_cap(retry, 20) == 1000ms);  // and no overflow far past it
  CHECK(backoff_cap(retry, 1000) == 1000ms);
  glmproxy::RetryConfig huge;
  huge.base_delay = std::chrono::milliseconds(600'000);
  huge.max_delay = std::chrono::milliseconds(3'600'000);
  CHECK(backoff_cap(huge, 64) == huge.max_delay);
  glmproxy::RetryConfig zero;
  zero.base_delay = 0ms;
  CHECK(backoff_cap(zero, 3) == 0ms);

  // Uniform over the whole range: both ends are reached and the mean is the middle. (A fixed
  // seed: the check is exact for this sequence, and true of any uniform one.)
  std::mt19937_64 rng(12345);
  for (int attempt = 1; attempt <= 6; ++attempt) {
    const auto cap = backoff_cap(retry, attempt).count();
    constexpr int kSamples = 4000;
    std::int64_t low = cap, high = 0, sum = 0;
    int outside = 0;
    for (int i = 0; i < kSamples; ++i) {
      const auto wait = glmproxy::detail::backoff_delay(retry, attempt, rng).count();
      outside += wait < 0 || wait > cap ? 1 : 0;
      low = std::min(low, wait);
      high = std::max(high, wait);
      sum += wait;
    }
    INFO("attempt " << attempt << ", cap " << cap);
    CHECK(outside == 0);
    CHECK(low <= cap / 20);  // full jitter starts at 0, not at cap/2 ("equal jitter")
    CHECK(high >= cap - cap / 20);
    const double mean = static_cast<double>(sum) / kSamples;
    CHECK(mean == Approx(static_cast<double>(cap) / 2).epsilon(0.05));
  }
}

// transport.md, Retries: "`send()` does not retry on status (the caller sees every answer),
// only on connection failures."
TEST_CASE("docs: send() does not retry on status, only on connection failures",
          "[docs][retry][send]") {
  auto server = start_mock();
  auto client = make_client(config_for(*server));
  glmproxy::HttpRequest get;
  get.path = "models";
  for (int status : {503, 429, 500, 408}) {
    INFO(status);
    server->reset();
    Fault f;
    f.status = status;
    f.headers = {{"Retry-After", "0"}};
    f.path_contains = "/models";
    server->add_fault(f);  // once: a retry would get the normal 200
    auto r = client.send(get);
    REQUIRE(r);
    CHECK(r->status == status);
    CHECK(server->stats().models_requests == 1);
  }
  // A connection closed before any response byte: sent again, and the answer is the retry's.
  // (A new client: on a fresh connection libcurl does not retry by itself, as it does once
  // when a reused connection turns out dead.)
  server->reset();
  auto fresh = make_client(config_for(*server));
  Fault silent;
  silent.path_contains = "/models";
  silent.delay_before_headers = 10s;
  server->add_fault(silent);
  std::promise<Result<glmproxy::HttpResponse>> answer;
  std::thread caller([&] { answer.set_value(fresh.send(get)); });
  REQUIRE(eventually([&] { return server->stats().models_requests == 1; }));
  server->drop_connections();
  auto r = answer.get_future().get();
  caller.join();
  INFO((r ? "" : r.error().describe()));
  REQUIRE(r);
  CHECK(r->status == 200);
  CHECK(server->stats().models_requests == 2);
}

// --- timeouts ---------------------------------------------------------------------------

// transport.md, Timeouts: GLMPROXY_TOTAL_TIMEOUT_MS is measured from "the call, across attempts
// and backoff" and its error message starts "`total timeout`"; "All three are
// `ErrorCode::Timeout`."
TEST_CASE("docs: the total timeout's message starts with 'total timeout', across attempts",
          "[docs][timeout]") {
  auto server = start_mock();
  Config config = config_for(*server);
  config.timeouts.first_byte = 60s;  // only the total deadline can end these
  config.timeouts.connect = 100ms;   // (validate(): not above the total)
  SECTION("one attempt that never answers") {
    config.timeouts.total = 400ms;
    auto client = make_client(config);
    Fault silent;
    // Only this client's path: tests run side by side, and a client of another test aimed at
    // a closed_port() (".../v4/chat/completions", retrying) reaches this mock when it was given
    // that port, and would take a fault matching any path.
    silent.path_contains = "/api/paas/v4/chat/completions";
    silent.delay_before_headers = 5s;
    server->add_fault(silent);
    const auto start = Clock::now();
    auto reply = client.complete(hello());
    // Once seen answered under ASan on a loaded machine (CI, 2026-12-02): then say how.
    const auto seen = server->stats();
    INFO("attempts " << (reply ? reply->attempts : 0) << ", chat requests " << seen.chat_requests
                     << ", connections " << seen.connections_accepted << ", faults applied "
                     << seen.faults_applied << ", API requests " << seen.requests);
    REQUIRE_FALSE(reply);
    CHECK(Clock::now() - start < 3s);
    CHECK(reply.error().code == ErrorCode::Timeout);
    CHECK_THAT(reply.error().message, Catch::StartsWith("total timeout"));
    CHECK_THAT(reply.error().message, Catch::Contains("GLMPROXY_TOTAL_TIMEOUT_MS=400"));
    CHECK(server->stats().chat_requests == 1);
  }
  SECTION("the deadline holds across a retry: the second attempt gets what is left") {
    config.timeouts.total = 3000ms;
    auto client = make_client(config);
    Fault busy;  // the first attempt takes 2 s of the 3 and is answered 503 (retried)
    busy.status = 503;
    busy.delay_before_headers = 2000ms;
    server->add_fault(busy);
    Fault silent;  // the second never answers
    silent.delay_before_headers = 20s;
    server->add_fault(silent);
    const auto start = Clock::now();
    auto reply = client.complete(hello());
    const auto took = Clock::now() - start;
    REQUIRE_FALSE(reply);
    CHECK(reply.error().code == ErrorCode::Timeout);
    CHECK_THAT(reply.error().message, Catch::StartsWith("total timeout"));
    // ... and says why the attempt before it failed.
    CHECK_THAT(reply.error().message, Catch::Contains("after 2 attempts; the last failed: "));
    CHECK_THAT(reply.error().message, Catch::Contains("503"));
    CHECK(server->stats().chat_requests == 2);
    CHECK(took >= 2900ms);
    CHECK(took < 4500ms);  // a fresh 3 s for the second attempt would end after 5 s
  }
}

// transport.md, Retries: "An attempt is retried when it got 408, 409, 429 or 5xx (529
// included)"; "Never retried: ... 4xx other than 408/409/429". Errors: "400/413/422 →
// `InvalidArgument`, 401 → `Unauthorized`, 403 → `Forbidden`, 429 → `RateLimited` ..., others →
// `UpstreamError`."
TEST_CASE("docs: 408, 409, 429 and 5xx are retried, other 4xx are final and mapped",
          "[docs][retry][errors]") {
  auto server = start_mock();
  auto client = make_client(config_for(*server));
  for (int status : {408, 409, 429, 500, 502, 503, 504, 529}) {
    INFO(status);
    server->reset();
    Fault once;
    once.status = status;
    server->add_fault(once);
    auto reply = client.complete(numbered(status));
    INFO(describe(reply));
    REQUIRE(reply);
    CHECK(reply->attempts == 2);
    CHECK(server->stats().chat_requests == 2);
  }
  struct Final {
    int status;
    ErrorCode code;
  };
  for (const Final f :
       {Final{400, ErrorCode::InvalidArgument}, Final{413, ErrorCode::InvalidArgument},
        Final{422, ErrorCode::InvalidArgument}, Final{401, ErrorCode::Unauthorized},
        Final{403, ErrorCode::Forbidden}, Final{404, ErrorCode::UpstreamError},
        Final{418, ErrorCode::UpstreamError}}) {
    INFO(f.status);
    server->reset();
    Fault once;
    once.status = f.status;
    server->add_fault(once);
    auto reply = client.complete(numbered(1000 + f.status));
    REQUIRE_FALSE(reply);
    CHECK(reply.error().code == f.code);
    CHECK(reply.error().http_status == f.status);
    CHECK(server->stats().chat_requests == 1);
  }
}

// transport.md, Retries: "Z.AI business codes for no balance or caps (1113, 1304, 1308, 1310),
// refused content (1301) and prompt too long (1261) are final whatever the status".
TEST_CASE("docs: Z.AI final business codes are not retried, whatever the status",
          "[docs][retry][errors]") {
  auto server = start_mock();
  auto client = make_client(config_for(*server));
  int i = 0;
  for (const char* code : {"1113", "1304", "1308", "1310", "1301", "1261"}) {
    for (int status : {429, 500, 503}) {
      INFO(code << " with HTTP " << status);
      server->reset();
      Fault f;
      f.status = status;
      f.body = std::string(R"({"error":{"code":")") + code + R"(","message":"final"}})";
      server->add_fault(f);
      auto reply = client.complete(numbered(++i));
      REQUIRE_FALSE(reply);
      CHECK(reply.error().upstream_code == code);
      CHECK_FALSE(reply.error().retryable());
      const bool quota = std::string(code) != "1301" && std::string(code) != "1261";
      CHECK(reply.error().code == (quota ? ErrorCode::QuotaExceeded : ErrorCode::InvalidArgument));
      CHECK(server->stats().chat_requests == 1);
    }
  }
}

// transport.md, Retries: "fewer than `GLMPROXY_MAX_ATTEMPTS` attempts were made ..., not counting
// attempts answered 429/1302 (too many at once: the request was not processed ...)".
TEST_CASE("docs: attempts answered 429/1302 do not count against GLMPROXY_MAX_ATTEMPTS",
          "[docs][retry]") {
  auto server = start_mock();
  Config config = config_for(*server);
  config.retry.max_attempts = 1;  // no retries at all, but for 429/1302
  auto client = make_client(config);
  Fault busy;
  busy.status = 429;
  busy.headers = {{"retry-after-ms", "20"}};
  busy.body = R"({"error":{"code":"1302","message":"High concurrency usage of this API"}})";
  busy.times = 2;
  server->add_fault(busy);
  auto reply = client.complete(numbered(1));
  INFO(describe(reply));
  REQUIRE(reply);
  CHECK(reply->attempts == 3);
  CHECK(server->stats().chat_requests == 3);
  // Anything else is counted: one attempt, no retry.
  server->reset();
  Fault down;
  down.status = 503;
  server->add_fault(down);
  reply = client.complete(numbered(2));
  REQUIRE_FALSE(reply);
  CHECK(reply.error().http_status == 503);
  CHECK(server->stats().chat_requests == 1);
}

// transport.md, Retries: "the wait fits in the overall deadline (`GLMPROXY_TOTAL_TIMEOUT_MS`,
// from the call, across all attempts and waits)".
TEST_CASE("docs: a retry whose wait does not fit the deadline is not waited for",
          "[docs][retry][timeout]") {
  auto server = start_mock();
  Config config = config_for(*server);
  config.timeouts.total = 1500ms;
  config.timeouts.connect = 100ms;
  auto client = make_client(config);
  Fault later;
  later.status = 429;
  later.headers = {{"Retry-After", "3"}};  // 3 s: past the 1.5 s deadline
  server->add_fault(later);
  const auto start = Clock::now();
  auto reply = client.complete(numbered(1));
  const auto took = Clock::now() - start;
  REQUIRE_FALSE(reply);
  CHECK(reply.error().code == ErrorCode::RateLimited);  // the answer, not a timeout
  REQUIRE(reply.error().retry_after);
  CHECK(*reply.error().retry_after == 3s);
  CHECK(took < 1200ms);  // failed at once, did not wait out the deadline
  CHECK(server->stats().chat_requests == 1);
}

// transport.md, Retries: "The wait is the upstream's `retry-after-ms` or `Retry-After` (seconds
// or HTTP date) when given".
TEST_CASE("docs: the wait is the upstream's retry-after-ms or Retry-After", "[docs][retry]") {
  auto server = start_mock();
  auto client = make_client(config_for(*server));  // backoff alone would wait <= 50 ms
  struct Case {
    std::string header, value;
    std::chrono::milliseconds at_least;
  };
  for (const Case& c : {Case{"retry-after-ms", "600", 600ms}, Case{"Retry-After", "1", 1000ms},
                        Case{"Retry-After", "(an HTTP date 3 s ahead)", 1500ms}}) {
    INFO(c.header << ": " << c.value);
    server->reset();
    Fault f;
    f.status = 503;
    // (The date is written now: its whole seconds make the wait 2 to 3 s, less the answer's way.)
    f.headers = {{c.header, c.value.starts_with("(") ? http_date(3s) : c.value}};
    server->add_fault(f);
    const auto start = Clock::now();
    auto reply = client.complete(numbered(static_cast<int>(c.at_least.count())));
    const auto took = Clock::now() - start;
    INFO(describe(reply));
    REQUIRE(reply);
    CHECK(reply->attempts == 2);
    CHECK(took >= c.at_least);
    CHECK(took < c.at_least + 5s);
  }
}

// transport.md, Retries: retried when it "failed to connect or send before any response byte
// arrived"; Pool: "a transfer that fails before any response byte is retried".
TEST_CASE("docs: a connection lost before any response byte is retried", "[docs][retry]") {
  auto server = start_mock();
  auto client = make_client(config_for(*server));  // a fresh connection: libcurl does not
                                                   // retry it by itself
  Fault silent;
  silent.delay_before_headers = 10s;
  server->add_fault(silent);
  std::promise<Result<ChatResponse>> answer;
  std::thread caller([&] { answer.set_value(client.complete(hello())); });
  REQUIRE(eventually([&] { return server->stats().chat_requests == 1; }));
  server->drop_connections();
  auto reply = answer.get_future().get();
  caller.join();
  INFO(describe(reply));
  REQUIRE(reply);
  CHECK(reply->attempts == 2);
  CHECK(server->stats().chat_requests == 2);
  // Once a byte of the answer came, it is not: a cut body is BadResponse, sent once (see
  // proxy_client_test "broken upstream bodies give BadResponse and are not retried").
}

// transport.md, Retries: "`Accept-Encoding` still asks for gzip, br and zstd".
TEST_CASE("docs: requests ask for gzip, br and zstd", "[docs][errors]") {
  auto server = start_mock();
  auto client = make_client(config_for(*server));
  REQUIRE(client.complete(hello()));
  const auto accept = server->recorded().back().header("accept-encoding");
  REQUIRE(accept);
  CHECK_THAT(*accept, Catch::Contains("gzip"));
  CHECK_THAT(*accept, Catch::Contains("br"));
  CHECK_THAT(*accept, Catch::Contains("zstd"));
}

// transport.md, Retries: 429/1302 answers are not counted "(20 at most: past that they count)".
TEST_CASE("docs: at most 20 answers 429/1302 go uncounted", "[docs][retry]") {
  auto server = start_mock();
  Config config = config_for(*server);
  config.retry.max_attempts = 1;
  config.timeouts.total = 60s;
  auto client = make_client(config);
  Fault busy;
  busy.status = 429;
  busy.headers = {{"retry-after-ms", "1"}};
  busy.body = R"({"error":{"code":"1302","message":"High concurrency usage of this API"}})";
  busy.times = 0;
  server->add_fault(busy);
  auto reply = client.complete(numbered(1));
  REQUIRE_FALSE(reply);
  CHECK(reply.error().upstream_code == "1302");
  CHECK(server->stats().chat_requests == 21);  // 20 free, then the one GLMPROXY_MAX_ATTEMPTS allows
}

// transport.md, Timeouts: "A request waiting for a connection slot fails with `PoolTimeout`
// after `POOL_ACQUIRE_TIMEOUT`; one whose total deadline passed while it waited fails with the
// total timeout when a slot frees, without being sent."
TEST_CASE("docs: a request whose deadline passed while it waited for a slot is not sent",
          "[docs][timeout][admission]") {
  auto server = start_mock();
  Config config = config_for(*server);
  config.pool.max_connections = 1;
  config.pool.min_connections = 1;
  config.pool.acquire_timeout = 20s;
  config.timeouts.total = 1000ms;
  config.timeouts.connect = 100ms;
  auto client = make_client(config);
  Fault busy;  // a's first attempt: 503 after 400 ms, retried at once (within its deadline)
  busy.status = 503;
  busy.delay_before_headers = 400ms;
  server->add_fault(busy);
  Fault silent;  // b, which takes the slot first, holds it until its own deadline
  silent.delay_before_headers = 20s;
  server->add_fault(silent);
  std::promise<Result<ChatResponse>> a, b;
  client.complete_async(numbered(1), [&](Result<ChatResponse> r) { a.set_value(std::move(r)); });
  REQUIRE(eventually([&] { return server->stats().chat_requests == 1; }));
  client.complete_async(numbered(2), [&](Result<ChatResponse> r) { b.set_value(std::move(r)); });
  // b is queued before a's retry: it goes first and keeps the slot past a's deadline.
  auto b_reply = b.get_future().get();
  auto a_reply = a.get_future().get();
  REQUIRE_FALSE(b_reply);
  CHECK_THAT(b_reply.error().message, Catch::StartsWith("total timeout"));
  REQUIRE_FALSE(a_reply);
  CHECK(a_reply.error().code == ErrorCode::Timeout);
  CHECK_THAT(a_reply.error().message, Catch::StartsWith("total timeout"));
  CHECK(server->stats().chat_requests == 2);  // a's retry was never sent
}
