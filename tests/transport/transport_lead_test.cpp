// Transport::lead(): a blocking caller drives the loop itself when nobody else does, and hands it
// back, waking the I/O thread for whatever is left (docs/transport.md, Threads). Against the
// mock upstream on 127.0.0.1.

#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <future>
#include <memory>
#include <string>
#include <thread>

#include "glmproxy/mock/mock_upstream.hpp"
#include "support/mock_client.hpp"
#include "transport/transport.hpp"

using glmproxy::Config;
using glmproxy::Result;
using glmproxy::detail::HttpExchange;
using glmproxy::detail::HttpResult;
using glmproxy::detail::Transport;
using glmproxy::mock::Fault;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

namespace {

HttpExchange chat(const glmproxy::mock::MockUpstream& server, const std::string& prompt) {
  HttpExchange ex;
  ex.url = server.base_url() + "/api/paas/v4/chat/completions";
  ex.headers = {"Content-Type: application/json", "Authorization: Bearer sk-test-key-123456"};
  ex.body = R"({"model":"glm-4.7","messages":[{"role":"user","content":")" + prompt + R"("}]})";
  ex.model = "glm-4.7";
  return ex;
}

std::unique_ptr<Transport> make_transport(const glmproxy::mock::MockUpstream& server) {
  Config c = test_support::config_for(server);
  c.retry.max_attempts = 1;
  auto t = Transport::create(c);
  REQUIRE(t);
  return std::move(*t);
}

// What one exchange's callback saw.
struct Answer {
  std::promise<void> done;
  std::atomic<bool> ready{false};
  std::thread::id thread;
  int status = 0;
};

glmproxy::detail::TransferCallback record(const std::shared_ptr<Answer>& a) {
  return [a](Result<HttpResult> r) {
    a->thread = std::this_thread::get_id();
    a->status = r ? r->status : -1;
    a->ready.store(true);
    a->done.set_value();
  };
}

}  // namespace

TEST_CASE("lead: a lone blocking request is carried out on the calling thread",
          "[transport][lead]") {
  auto server = test_support::start_mock();
  auto transport = make_transport(*server);
  for (int i = 0; i < 5; ++i) {
    auto a = std::make_shared<Answer>();
    transport->lead(chat(*server, "lone " + std::to_string(i)), record(a),
                    [a] { return a->ready.load(); });
    REQUIRE(a->ready.load());  // answered before lead() returned
    CHECK(a->status == 200);
    CHECK(a->thread == std::this_thread::get_id());
  }
  CHECK(transport->stats().wakeups == 0);  // nobody was woken
  CHECK_FALSE(transport->on_io_thread());  // handed back
}

TEST_CASE("lead: while another thread drives, the request is handed over and answered there",
          "[transport][lead]") {
  auto server = test_support::start_mock();
  Fault slow;
  slow.delay_before_headers = 400ms;
  slow.times = 1;
  server->add_fault(slow);
  auto transport = make_transport(*server);
  // The I/O thread drives the slow one.
  auto slow_answer = std::make_shared<Answer>();
  transport->submit(chat(*server, "slow"), record(slow_answer));
  std::this_thread::sleep_for(100ms);  // on the wire, the I/O thread in its poll
  auto a = std::make_shared<Answer>();
  transport->lead(chat(*server, "fast"), record(a), [a] { return a->ready.load(); });
  REQUIRE(a->done.get_future().wait_for(10s) == std::future_status::ready);
  CHECK(a->status == 200);
  CHECK(a->thread != std::this_thread::get_id());
  REQUIRE(slow_answer->done.get_future().wait_for(10s) == std::future_status::ready);
  CHECK(slow_answer->status == 200);
}

TEST_CASE("lead: what a leading caller leaves on the wire is finished by the I/O thread at once",
          "[transport][lead]") {
  auto server = test_support::start_mock();
  Fault slow;
  slow.delay_before_headers = 300ms;
  slow.times = 1;
  server->add_fault(slow);
  auto transport = make_transport(*server);
  std::this_thread::sleep_for(50ms);  // the I/O thread parked
  // Drives one turn (the request goes on the wire), then hands the loop back unanswered.
  auto a = std::make_shared<Answer>();
  int turns = 0;
  const auto sent = Clock::now();
  transport->lead(chat(*server, "left behind"), record(a), [&turns] { return turns++ >= 1; });
  CHECK_FALSE(a->ready.load());
  REQUIRE(a->done.get_future().wait_for(10s) == std::future_status::ready);
  const auto took = Clock::now() - sent;
  CHECK(a->status == 200);
  CHECK(a->thread != std::this_thread::get_id());  // the I/O thread took it over
  // Woken when the loop was handed back, not by its once-a-second look.
  CHECK(took < 900ms);
}

TEST_CASE("lead: after stop() the request is answered on the calling thread", "[transport][lead]") {
  auto server = test_support::start_mock();
  auto transport = make_transport(*server);
  transport->stop();
  auto a = std::make_shared<Answer>();
  transport->lead(chat(*server, "late"), record(a), [a] { return a->ready.load(); });
  REQUIRE(a->ready.load());
  CHECK(a->status == -1);
  CHECK(a->thread == std::this_thread::get_id());
  CHECK(server->stats().chat_requests == 0);
}
