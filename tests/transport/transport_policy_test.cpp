// The transport's pure parts, without a socket: the retry policy, the admission queue and the
// mapping of libcurl's result codes to Errors (plus a refused curl_easy_setopt, on a handle that
// never connects). Time is passed in, and the rng is seeded: nothing sleeps.

#include <curl/curl.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "glmproxy/config.hpp"
#include "glmproxy/error.hpp"
#include "transport/admission_queue.hpp"
#include "transport/curl_callbacks.hpp"
#include "transport/curl_errors.hpp"
#include "transport/easy_setup.hpp"
#include "transport/retry_policy.hpp"

using glmproxy::Config;
using glmproxy::Error;
using glmproxy::ErrorCode;
using glmproxy::RetryConfig;
using glmproxy::detail::AdmissionQueue;
using glmproxy::detail::CurlFailure;
using glmproxy::detail::RetryDecision;
using glmproxy::detail::Transfer;
using glmproxy::detail::TransferPtr;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

namespace {

const Clock::time_point t0 = Clock::time_point{} + 1000s;

RetryConfig retry_config() {
  RetryConfig r;
  r.max_attempts = 3;
  r.base_delay = 100ms;
  r.max_delay = 1000ms;
  r.retry_after_cap = 5000ms;
  return r;
}

RetryDecision decide(const Error& e, int attempts, int free_retries = 0,
                     Clock::time_point deadline = t0 + 60s, std::uint64_t seed = 7) {
  std::mt19937_64 rng(seed);
  return glmproxy::detail::decide_retry(retry_config(),
                                        {.error = e,
                                         .attempts = attempts,
                                         .free_retries = free_retries,
                                         .deadline = deadline,
                                         .now = t0},
                                        rng);
}

Error failure() { return glmproxy::make_error(ErrorCode::ConnectionFailed, "connection failed"); }

Error waits(std::chrono::milliseconds retry_after) {
  Error e = glmproxy::make_error(ErrorCode::RateLimited, "slow down", 429);
  e.retry_after = retry_after;
  return e;
}

}  // namespace

TEST_CASE("retry policy: at most GLMPROXY_MAX_ATTEMPTS attempts", "[retry_policy]") {
  CHECK(decide(failure(), 1).retry());
  CHECK(decide(failure(), 2).retry());
  CHECK_FALSE(decide(failure(), 3).retry());
  CHECK_FALSE(decide(failure(), 4).retry());
}

TEST_CASE("retry policy: too-many-at-once attempts are free up to 20", "[retry_policy]") {
  // 2 counted + 20 free: one more may go.
  CHECK(decide(failure(), 22, 20).retry());
  // Past 20 free ones they count: 23 - 20 = 3 counted.
  CHECK_FALSE(decide(failure(), 23, 21).retry());
  CHECK_FALSE(decide(failure(), 23, 20).retry());
  CHECK(glmproxy::detail::kMaxFreeRetries == 20);
}

TEST_CASE("retry policy: the upstream's retry_after is waited out unless over the cap",
          "[retry_policy]") {
  const RetryDecision at_cap = decide(waits(5000ms), 1);
  REQUIRE(at_cap.retry());
  CHECK(at_cap.at == t0 + 5000ms);
  CHECK(decide(waits(0ms), 1).at == t0);
  CHECK_FALSE(decide(waits(5001ms), 1).retry());
}

TEST_CASE("retry policy: a wait reaching the deadline gives up", "[retry_policy]") {
  CHECK_FALSE(decide(waits(500ms), 1, 0, t0 + 500ms).retry());
  CHECK(decide(waits(500ms), 1, 0, t0 + 501ms).retry());
  // Backoff too: attempt 1 waits at most 100 ms, so a deadline now is always reached.
  CHECK_FALSE(decide(failure(), 1, 0, t0).retry());
}

TEST_CASE("retry policy: full-jitter backoff stays in [0, min(max, base * 2^(n-1))]",
          "[retry_policy]") {
  for (auto [attempt, cap] : {std::pair{1, 100ms}, {2, 200ms}, {3, 400ms}, {5, 1000ms}}) {
    RetryConfig r = retry_config();
    r.max_attempts = 100;
    std::mt19937_64 rng(42);
    auto lowest = cap, highest = 0ms;
    for (int i = 0; i < 2000; ++i) {
      const RetryDecision d = glmproxy::detail::decide_retry(
          r, {.error = failure(), .attempts = attempt, .deadline = t0 + 60s, .now = t0}, rng);
      REQUIRE(d.retry());
      const auto wait = std::chrono::duration_cast<std::chrono::milliseconds>(d.at - t0);
      lowest = std::min(lowest, wait);
      highest = std::max(highest, wait);
    }
    INFO("attempt " << attempt);
    CHECK(lowest >= 0ms);
    CHECK(highest <= cap);
    // Uniform over the whole range: both ends are reached closely.
    CHECK(lowest <= cap / 10);
    CHECK(highest >= cap * 9 / 10);
  }
  // Seeded: the same draw twice.
  CHECK(decide(failure(), 2, 0, t0 + 60s, 99).at == decide(failure(), 2, 0, t0 + 60s, 99).at);
}

// --- the admission queue --------------------------------------------------------------------

namespace {

Config admission_config() {
  Config c;
  c.pool.max_connections = 2;
  c.pool.acquire_timeout = 100ms;
  c.timeouts.total = 10s;
  c.admission.model_concurrency = 0;  // = the pool
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
  t->body = t->ex.model;  // names it in the decisions
  return t;
}

// Runs admission passes the way the driver does: admitted ones count as on the wire.
struct Driver {
  AdmissionQueue queue;
  int on_wire = 0;
  std::vector<AdmissionQueue::Decision> decisions;
  std::vector<TransferPtr> wire;

  explicit Driver(const Config& c) : queue(c) {}

  void admit(Clock::time_point now) {
    queue.admit(
        now, [this] { return on_wire; },
        [this](AdmissionQueue::Decision d) {
          if (d.kind == AdmissionQueue::Decision::Kind::Admit) {
            ++on_wire;
            wire.push_back(std::move(d.transfer));
          } else {
            decisions.push_back(std::move(d));
          }
        });
  }

  // The attempt on the wire at `i` ended with `status` (0 and !answered: a connect failure).
  void end(std::size_t i, int status, Clock::time_point now, const Error* answer = nullptr) {
    Transfer& t = *wire.at(i);
    t.status = status;
    queue.on_attempt_end(t, {.answered = status > 0, .answer = answer}, now);
    --on_wire;
  }

  std::vector<std::string> on_wire_names() const {
    std::vector<std::string> out;
    for (const auto& t : wire) out.push_back(t->body);
    return out;
  }
};

}  // namespace

TEST_CASE("admission queue: at most POOL_MAX_CONNECTIONS on the wire, FIFO", "[admission_queue]") {
  Driver d(admission_config());
  for (const char* name : {"a", "b", "c"}) d.queue.push(transfer(name), t0);
  d.admit(t0);
  CHECK(d.on_wire_names() == std::vector<std::string>{"a", "b"});
  CHECK(d.queue.size() == 1);
  d.admit(t0);  // still full
  CHECK(d.queue.size() == 1);
  d.end(0, 200, t0 + 1ms);
  d.admit(t0 + 1ms);
  CHECK(d.on_wire_names() == std::vector<std::string>{"a", "b", "c"});
  CHECK(d.queue.empty());
  CHECK(d.decisions.empty());
}

TEST_CASE("admission queue: a model at its limit lets other models pass", "[admission_queue]") {
  Config c = admission_config();
  c.pool.max_connections = 4;
  c.admission.model_concurrency = 1;
  Driver d(c);
  for (const char* name : {"m1", "m1", "m2", "m1", "m3"}) d.queue.push(transfer(name), t0);
  d.admit(t0);
  CHECK(d.on_wire_names() == std::vector<std::string>{"m1", "m2", "m3"});
  CHECK(d.queue.size() == 2);
  // The held ones keep their order: the first m1 left goes first when m1 has room.
  d.end(0, 200, t0 + 1ms);
  d.admit(t0 + 1ms);
  CHECK(d.on_wire_names() == std::vector<std::string>{"m1", "m2", "m3", "m1"});
  CHECK(d.queue.size() == 1);
}

TEST_CASE("admission queue: POOL_ACQUIRE_TIMEOUT expires waiting transfers as PoolTimeout",
          "[admission_queue]") {
  Driver d(admission_config());
  for (const char* name : {"a", "b", "c"}) d.queue.push(transfer(name), t0);
  d.admit(t0);
  REQUIRE(d.queue.next_expiry() == t0 + 100ms);
  std::vector<AdmissionQueue::Decision> expired;
  auto collect = [&](AdmissionQueue::Decision x) { expired.push_back(std::move(x)); };
  d.queue.expire(t0 + 99ms, d.on_wire, collect);
  CHECK(expired.empty());
  d.queue.expire(t0 + 100ms, d.on_wire, collect);
  REQUIRE(expired.size() == 1);
  CHECK(expired[0].kind == AdmissionQueue::Decision::Kind::Expire);
  CHECK(expired[0].transfer->body == "c");
  CHECK(expired[0].error.code == ErrorCode::PoolTimeout);
  CHECK_THAT(expired[0].error.message,
             Catch::StartsWith("no connection slot became free within POOL_ACQUIRE_TIMEOUT=100 "
                               "ms (2 requests on the wire)"));
  CHECK(d.queue.empty());

  // Held by its model's limit, not the pool: the message says which limit.
  Config c = admission_config();
  c.admission.model_concurrency = 1;
  Driver m(c);
  m.queue.push(transfer("m1"), t0);
  m.queue.push(transfer("m1"), t0);
  m.admit(t0);
  expired.clear();
  m.queue.expire(t0 + 100ms, m.on_wire, collect);
  REQUIRE(expired.size() == 1);
  CHECK_THAT(expired[0].error.message,
             Catch::Contains("model m1 at its limit of 1 requests at once "
                             "(GLMPROXY_MODEL_CONCURRENCY)"));
}

TEST_CASE("admission queue: a transfer past its total deadline is rejected, not started",
          "[admission_queue]") {
  Driver d(admission_config());
  TransferPtr late = transfer("a");
  late->deadline = t0 + 50ms;
  d.queue.push(std::move(late), t0);
  d.queue.push(transfer("b"), t0);
  d.admit(t0 + 50ms);
  CHECK(d.on_wire_names() == std::vector<std::string>{"b"});
  REQUIRE(d.decisions.size() == 1);
  CHECK(d.decisions[0].kind == AdmissionQueue::Decision::Kind::Reject);
  CHECK(d.decisions[0].error.code == ErrorCode::Timeout);
  CHECK_THAT(d.decisions[0].error.message,
             Catch::StartsWith("total timeout: GLMPROXY_TOTAL_TIMEOUT_MS=10000 ms passed"));
}

TEST_CASE("admission queue: an open breaker rejects its host fast", "[admission_queue]") {
  Driver d(admission_config());
  d.queue.push(transfer("a"), t0);
  d.queue.push(transfer("b"), t0);
  d.admit(t0);
  REQUIRE(d.on_wire == 2);
  d.end(0, 0, t0 + 1ms);    // connection failures
  d.end(1, 503, t0 + 2ms);  // 5xx
  d.queue.push(transfer("c"), t0 + 3ms);
  d.queue.push(transfer("other", "http://elsewhere:8080/v4"), t0 + 3ms);
  d.admit(t0 + 3ms);
  CHECK(d.on_wire_names() == std::vector<std::string>{"a", "b", "other"});
  REQUIRE(d.decisions.size() == 1);
  const Error& e = d.decisions[0].error;
  CHECK(d.decisions[0].kind == AdmissionQueue::Decision::Kind::Reject);
  CHECK(e.code == ErrorCode::UpstreamError);
  CHECK(e.upstream_code == "circuit_open");
  CHECK(e.retry_after.has_value());
  CHECK_THAT(e.message, Catch::StartsWith("circuit breaker open for http://upstream:8080"));
  CHECK(d.queue.stats().breaker_opened == 1);
  CHECK(d.queue.stats().breaker_rejections == 1);
}

TEST_CASE("admission queue: 429/1302 halves the model's limit and is a free retry",
          "[admission_queue]") {
  Config c = admission_config();
  c.pool.max_connections = 8;
  Driver d(c);
  for (int i = 0; i < 4; ++i) d.queue.push(transfer("m"), t0);
  d.admit(t0);
  REQUIRE(d.on_wire == 4);
  Error quota = glmproxy::make_error(ErrorCode::QuotaExceeded, "arrears", 429);
  quota.upstream_code = "1113";
  d.end(0, 429, t0 + 1ms, &quota);  // a balance code says nothing about concurrency
  CHECK(d.queue.stats().concurrency_decreases == 0);
  CHECK(d.wire[0]->free_retries == 0);
  Error busy = glmproxy::make_error(ErrorCode::RateLimited, "too many", 429);
  busy.upstream_code = "1302";
  d.end(1, 429, t0 + 2ms, &busy);
  CHECK(d.queue.stats().concurrency_decreases == 1);
  CHECK(d.queue.stats().model_limits.at("m") == 4);
  CHECK(d.wire[1]->free_retries == 1);
}

// --- libcurl's result codes -----------------------------------------------------------------

namespace {

CurlFailure connected() {
  CurlFailure f;
  f.connected = true;
  return f;
}

CurlFailure past_deadline() {
  CurlFailure f;
  f.past_deadline = true;
  return f;
}

CurlFailure with(std::string_view errbuf, int status = 0) {
  CurlFailure f;
  f.errbuf = errbuf;
  f.status = status;
  return f;
}

Error mapped(CURLcode code, CurlFailure f = {}) {
  f.code = code;
  Config c;
  c.timeouts.connect = 250ms;
  c.timeouts.total = 9000ms;
  f.total.configured = c.timeouts.total;
  return glmproxy::detail::curl_error(f, c);
}

}  // namespace

TEST_CASE("curl errors: timeouts say which bound", "[curl_errors]") {
  const Error connect = mapped(CURLE_OPERATION_TIMEDOUT);
  CHECK(connect.code == ErrorCode::Timeout);
  CHECK_THAT(connect.message, Catch::StartsWith("connect timeout: no connection within "
                                                "GLMPROXY_CONNECT_TIMEOUT_MS=250 ms ("));
  CHECK(connect.retryable());
  for (const CurlFailure& f : {connected(), past_deadline()}) {
    const Error total = mapped(CURLE_OPERATION_TIMEDOUT, f);
    CHECK(total.code == ErrorCode::Timeout);
    CHECK(total.message == "total timeout: GLMPROXY_TOTAL_TIMEOUT_MS=9000 ms passed");
  }
  CurlFailure retried = past_deadline();
  retried.total.attempts = 2;
  retried.total.last_failure = "UpstreamError (HTTP 503): busy";
  CHECK(mapped(CURLE_OPERATION_TIMEDOUT, retried).message ==
        "total timeout: GLMPROXY_TOTAL_TIMEOUT_MS=9000 ms passed (after 2 attempts; the last "
        "failed: UpstreamError (HTTP 503): busy)");
  CurlFailure own = past_deadline();
  own.total.own_bound = 300ms;
  CHECK(mapped(CURLE_OPERATION_TIMEDOUT, own).message ==
        "total timeout: the request's own bound of 300 ms passed");
}

TEST_CASE("curl errors: each class of code maps to its ErrorCode and message", "[curl_errors]") {
  for (CURLcode code : {CURLE_URL_MALFORMAT, CURLE_UNSUPPORTED_PROTOCOL}) {
    const Error e = mapped(code);
    CHECK(e.code == ErrorCode::InvalidArgument);
    CHECK_THAT(e.message, Catch::StartsWith("the request URL was refused: "));
    CHECK_FALSE(e.retryable());
  }
  for (CURLcode code :
       {CURLE_COULDNT_RESOLVE_HOST, CURLE_COULDNT_RESOLVE_PROXY, CURLE_COULDNT_CONNECT,
        CURLE_SSL_CONNECT_ERROR, CURLE_SEND_ERROR, CURLE_RECV_ERROR, CURLE_GOT_NOTHING}) {
    const Error e = mapped(code);
    INFO(e.message);
    CHECK(e.code == ErrorCode::ConnectionFailed);
    CHECK_THAT(e.message, Catch::StartsWith("connection failed: ") &&
                              Catch::EndsWith("(curl " + std::to_string(code) + ")"));
    CHECK(e.retryable());
  }
  const Error partial = mapped(CURLE_PARTIAL_FILE, with("", 200));
  CHECK(partial.code == ErrorCode::BadResponse);
  CHECK(partial.http_status == 200);
  CHECK_THAT(partial.message,
             Catch::StartsWith("the upstream closed the connection mid-response: "));
  for (CURLcode code :
       {CURLE_PEER_FAILED_VERIFICATION, CURLE_SSL_CACERT_BADFILE, CURLE_SSL_CERTPROBLEM,
        CURLE_SSL_ISSUER_ERROR, CURLE_SSL_CRL_BADFILE, CURLE_SSL_PINNEDPUBKEYNOTMATCH}) {
    const Error e = mapped(code);
    CHECK(e.code == ErrorCode::ConnectionFailed);
    CHECK(e.upstream_code == glmproxy::kTlsCertificateCode);
    CHECK_THAT(e.message, Catch::StartsWith("the upstream's TLS certificate could not be "
                                            "verified: "));
    CHECK_FALSE(e.retryable());
  }
  const Error other = mapped(CURLE_TOO_MANY_REDIRECTS);
  CHECK(other.code == ErrorCode::ConnectionFailed);
  CHECK_THAT(other.message, Catch::StartsWith("transfer failed: "));
}

TEST_CASE("curl errors: curl's own message wins over the generic one", "[curl_errors]") {
  CHECK(mapped(CURLE_COULDNT_CONNECT, with("Failed to connect to x port 1")).message ==
        "connection failed: Failed to connect to x port 1 (curl 7)");
  CHECK(mapped(CURLE_COULDNT_CONNECT).message == std::string("connection failed: ") +
                                                     curl_easy_strerror(CURLE_COULDNT_CONNECT) +
                                                     " (curl 7)");
  CurlFailure closed = with("transfer closed", 200);
  closed.code = CURLE_PARTIAL_FILE;
  const Error cut = glmproxy::detail::stream_cut_error(closed, "3 events");
  CHECK(cut.code == ErrorCode::BadResponse);
  CHECK(cut.http_status == 200);
  CHECK(cut.message == "the stream was cut: transfer closed after 3 events");
}

TEST_CASE("easy setup: an option libcurl refuses fails the attempt, naming it", "[easy_setup]") {
  CURL* easy = curl_easy_init();
  REQUIRE(easy != nullptr);
  Config c;
  glmproxy::detail::WireCounters wire;
  glmproxy::detail::CallbackEnv env;
  Transfer t;
  // libcurl refuses strings longer than CURL_MAX_INPUT_LENGTH (8 000 000 bytes).
  t.ex.url = "http://127.0.0.1:1/" + std::string(8'000'001, 'a');
  t.deadline = Clock::now() + 1s;
  auto refused = glmproxy::detail::setup_easy(easy, t, {c, nullptr, &wire, &env}, Clock::now());
  REQUIRE(refused.has_value());
  CHECK(refused->code == ErrorCode::Internal);
  CHECK_THAT(refused->message, Catch::StartsWith("libcurl refused CURLOPT_URL: "));
  // The same transfer with a usable URL is set up.
  t.ex.url = "http://127.0.0.1:1/";
  CHECK_FALSE(glmproxy::detail::setup_easy(easy, t, {c, nullptr, &wire, &env}, Clock::now()));
  CHECK(t.env == &env);
  curl_easy_cleanup(easy);
}
