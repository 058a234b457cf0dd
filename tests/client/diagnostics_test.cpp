// ProxyClient::diagnostics(): the public view of the client's inner counters that the library's
// own tests read (it replaced a private back door into the client).

#include <catch2/catch.hpp>
#include <chrono>
#include <string>
#include <thread>
#include <utility>

#include "glmproxy/proxy_client.hpp"
#include "support/key_file.hpp"
#include "support/mock_client.hpp"

using glmproxy::ChatRequest;
using glmproxy::ClientDiagnostics;
using glmproxy::ProxyClient;
using test_support::config_for;
using test_support::key_json;
using test_support::KeyFile;
using test_support::keys_file;
using test_support::make_client;
using test_support::numbered;
using test_support::start_mock;
using namespace std::chrono_literals;

TEST_CASE("diagnostics: counters after three requests agree with metrics()",
          "[client][diagnostics]") {
  auto server = start_mock();
  ProxyClient client = make_client(config_for(*server));
  const ClientDiagnostics before = client.diagnostics();
  CHECK(before.attempts == 0);
  CHECK(before.key_file_reads == 0);
  for (int i = 0; i < 3; ++i) REQUIRE(client.complete(numbered(i)));

  const ClientDiagnostics d = client.diagnostics();
  const glmproxy::MetricsSnapshot m = client.metrics();
  CHECK(d.attempts == 3);
  CHECK(d.retries == 0);
  CHECK(d.attempts == m.upstream.attempts);
  CHECK(d.connections_opened == m.pool.connections_opened);
  CHECK(d.connections_opened >= 1);
  CHECK(d.in_flight == 0);
  CHECK(d.waiting == 0);
  CHECK(d.reading_out == 0);
  // One after another: one curl handle, reused.
  CHECK(d.easy_handles_created == 1);
  CHECK(d.body_reads >= 3);
  CHECK(d.wakeups <= 3);  // a submission wakes the I/O thread only when it sleeps
  CHECK(d.loop_turns > before.loop_turns);
  CHECK(d.streams_cancelled == 0);
  CHECK(d.concurrency_decreases == 0);
  CHECK(d.breaker_opened == 0);
  CHECK(d.buffer_hits == m.buffers.hits);
  CHECK(d.buffer_misses == m.buffers.misses);
  CHECK(d.buffers_in_use == m.buffers.in_use);
  CHECK(d.key_file_reads == 0);  // no APIKEYS_FILE
  CHECK(d.key_file_writes == 0);
}

TEST_CASE("diagnostics: key file reads and writes", "[client][diagnostics]") {
  auto server = start_mock();
  KeyFile file(keys_file({key_json("pk_diag_1")}));
  glmproxy::Config config = config_for(*server);
  config.keys.file = file.path.string();
  config.rate_limit.batch_interval = 10ms;
  ProxyClient client = make_client(config);
  const std::uint64_t reads_at_start = client.diagnostics().key_file_reads;
  CHECK(reads_at_start >= 1);  // create() reads and checks the file
  ChatRequest r = numbered(1);
  r.api_key = "pk_diag_1";
  REQUIRE(client.complete(r));
  CHECK(client.diagnostics().key_file_reads > reads_at_start);  // the key looked up
  // Usage is written back in batches.
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (client.diagnostics().key_file_writes == 0 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(5ms);
  }
  CHECK(client.diagnostics().key_file_writes >= 1);
}

TEST_CASE("diagnostics of a moved-from client are zero", "[client][diagnostics]") {
  auto server = start_mock();
  ProxyClient client = make_client(config_for(*server));
  REQUIRE(client.complete(numbered(0)));
  ProxyClient other = std::move(client);
  CHECK(other.diagnostics().attempts == 1);
  const ClientDiagnostics d = client.diagnostics();  // NOLINT(bugprone-use-after-move): on purpose
  CHECK(d.attempts == 0);
  CHECK(d.loop_turns == 0);
  CHECK(d.easy_handles_created == 0);
}
