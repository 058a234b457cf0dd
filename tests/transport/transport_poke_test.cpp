// Transport::poke(): a consumer thread asks for a stream to end (its sink's cancel_requested()
// turns true) and wakes the I/O thread, which handles it as if on_body() had said Cancel.
// Against the mock upstream on 127.0.0.1, with streams that would otherwise stay open.

#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <future>
#include <memory>
#include <optional>
#include <string>
#include <thread>

#include "glmproxy/mock/mock_upstream.hpp"
#include "support/mock_client.hpp"
#include "protocol/body_sink.hpp"
#include "transport/transport.hpp"

using glmproxy::Config;
using glmproxy::Error;
using glmproxy::ErrorCode;
using glmproxy::Result;
using glmproxy::detail::BodySink;
using glmproxy::detail::HttpExchange;
using glmproxy::detail::HttpResult;
using glmproxy::detail::Transport;
using glmproxy::mock::Fault;
using namespace std::chrono_literals;

namespace {

// Takes every piece; says when the first arrived; asks to be cancelled once told to.
class CancellableSink final : public BodySink {
 public:
  void begin(glmproxy::detail::BufferPool&, std::string_view) override {}
  Action on_body(std::string_view chunk) override {
    bytes_ += chunk.size();
    if (!first_seen_) {
      first_seen_ = true;
      first_.set_value();
    }
    return Action::Continue;
  }
  std::optional<Error> on_end() override { return std::nullopt; }
  Error error() const override { return {}; }
  bool delivered() const noexcept override { return bytes_ > 0; }
  void release() noexcept override {}
  std::string progress() const override { return std::to_string(bytes_) + " bytes"; }
  bool cancel_requested() const noexcept override { return cancel_.load(); }

  std::future<void> first_piece() { return first_.get_future(); }
  void request_cancel() { cancel_.store(true); }

 private:
  std::size_t bytes_ = 0;
  bool first_seen_ = false;
  std::promise<void> first_;
  std::atomic<bool> cancel_{false};
};

HttpExchange stream_exchange(const glmproxy::mock::MockUpstream& server,
                             std::shared_ptr<BodySink> sink) {
  HttpExchange ex;
  ex.url = server.base_url() + "/api/paas/v4/chat/completions";
  ex.headers = {"Content-Type: application/json", "Authorization: Bearer sk-test-key-123456"};
  ex.body = R"({"model":"glm-4.7","messages":[{"role":"user","content":"hi"}],"stream":true})";
  ex.model = "glm-4.7";
  ex.sink = std::move(sink);
  return ex;
}

Config poke_config(const glmproxy::mock::MockUpstream& server) {
  Config c = test_support::config_for(server);
  c.timeouts.stream_idle = 20s;  // far beyond the waits below: only a cancel ends the stream
  c.timeouts.first_byte = 20s;
  c.timeouts.total = 30s;
  c.retry.max_attempts = 1;
  return c;
}

}  // namespace

TEST_CASE("poke: a stream whose sink asks to be cancelled ends as Cancelled, its slot freed",
          "[poke]") {
  auto server = test_support::start_mock();
  Fault f;
  f.sse_body = "data: {\"choices\":[{\"delta\":{\"content\":\"Hel\"}}]}\n\n";
  f.hold_open = true;  // never ends on its own
  server->add_fault(f);
  auto transport = Transport::create(poke_config(*server));
  REQUIRE(transport);
  auto sink = std::make_shared<CancellableSink>();
  auto first = sink->first_piece();
  std::promise<Result<HttpResult>> done;
  (*transport)->submit(stream_exchange(*server, sink), [&](Result<HttpResult> r) {
    done.set_value(std::move(r));
  });
  REQUIRE(first.wait_for(5s) == std::future_status::ready);
  auto answer = done.get_future();
  sink->request_cancel();
  (*transport)->poke();
  REQUIRE(answer.wait_for(3s) == std::future_status::ready);
  auto r = answer.get();
  REQUIRE_FALSE(r);
  CHECK(r.error().code == ErrorCode::Cancelled);
  CHECK(r.error().http_status == 200);
  const auto stats = (*transport)->stats();
  CHECK(stats.streams_cancelled == 1);
  CHECK(stats.in_flight == 0);  // the slot went back before the answer
}

TEST_CASE("poke: a cancelled request still waiting for its headers is closed as Cancelled",
          "[poke]") {
  auto server = test_support::start_mock();
  Fault f;
  f.delay_before_headers = 10s;
  server->add_fault(f);
  auto transport = Transport::create(poke_config(*server));
  REQUIRE(transport);
  auto sink = std::make_shared<CancellableSink>();
  std::promise<Result<HttpResult>> done;
  auto answer = done.get_future();
  (*transport)->submit(stream_exchange(*server, sink), [&](Result<HttpResult> r) {
    done.set_value(std::move(r));
  });
  // Once it is on the wire (a poke before that has nothing to look at).
  for (int i = 0; i < 200 && (*transport)->stats().in_flight == 0; ++i)
    std::this_thread::sleep_for(5ms);
  REQUIRE((*transport)->stats().in_flight == 1);
  // Without a poke the I/O thread does not look at the sink.
  sink->request_cancel();
  CHECK(answer.wait_for(300ms) == std::future_status::timeout);
  (*transport)->poke();
  REQUIRE(answer.wait_for(3s) == std::future_status::ready);
  auto r = answer.get();
  REQUIRE_FALSE(r);
  CHECK(r.error().code == ErrorCode::Cancelled);
  CHECK((*transport)->stats().streams_cancelled == 1);
  CHECK((*transport)->stats().in_flight == 0);
}
