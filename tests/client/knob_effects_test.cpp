// The effect of the configuration knobs no other suite drives through a ProxyClient:
// GLMPROXY_EMBEDDING_MODEL, GLMPROXY_MODEL_CONCURRENCY, APIKEY_CACHE_SIZE and GLMPROXY_LOG_LEVEL
// (docs/configuration.md says where every other knob's effect is tested).

#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <random>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "glmproxy/mock/mock_upstream.hpp"
#include "glmproxy/proxy_client.hpp"
#include "support/mock_client.hpp"

using glmproxy::ChatRequest;
using glmproxy::ChatResponse;
using glmproxy::Config;
using glmproxy::EmbeddingRequest;
using glmproxy::LogLevel;
using glmproxy::Result;
using glmproxy::mock::Fault;
using test_support::config_for;
using test_support::make_client;
using test_support::start_mock;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {

// A key file of two keys with ample quotas, in a fresh temporary directory.
struct TwoKeys {
  fs::path dir;
  fs::path path;
  TwoKeys() {
    std::random_device rd;
    dir = fs::temp_directory_path() /
          ("glmproxy-knobs-" + std::to_string(rd()) + std::to_string(rd()));
    fs::create_directories(dir);
    path = dir / "apikeys.json";
    std::string records;
    for (const char* key : {"pk_knob_a", "pk_knob_b"}) {
      if (!records.empty()) records += ',';
      records += std::string(R"({"key":")") + key +
                 R"(","name":"knobs","token_limit_per_5h":1000000000,)"
                 R"("expiry_date":"2099-01-01T00:00:00Z","created_at":"2026-01-01T00:00:00Z",)"
                 R"("last_used":null,)"
                 R"("total_lifetime_tokens":0,"usage_windows":[]})";
    }
    std::ofstream(path) << R"({"keys":[)" << records << "]}";
  }
  ~TwoKeys() {
    std::error_code ec;
    fs::remove_all(dir, ec);
  }
};

// Six requests alternating between the two keys; returns how often the key file was read.
std::uint64_t alternate_keys(const glmproxy::mock::MockUpstream& server, const TwoKeys& file,
                             std::size_t cache_size) {
  Config config = config_for(server);
  config.keys.file = file.path.string();
  config.keys.cache_size = cache_size;
  config.keys.cache_ttl = 3'600'000ms;  // nothing expires during the test
  // No usage write while the test runs (a write reads the file too, though it is not counted).
  config.rate_limit.max_batch_size = 1'000'000;
  config.rate_limit.batch_interval = 3'600'000ms;
  auto client = make_client(config);
  const std::uint64_t before = client.diagnostics().key_file_reads;
  for (int i = 0; i < 6; ++i) {
    ChatRequest r = test_support::numbered(i);
    r.api_key = i % 2 == 0 ? "pk_knob_a" : "pk_knob_b";
    auto reply = client.complete(r);
    INFO((reply ? "" : reply.error().describe()));
    REQUIRE(reply);
  }
  return client.diagnostics().key_file_reads - before;
}

// Log lines a client's Config::logger received (the logger may be called from any thread).
struct Lines {
  std::mutex mu;
  std::vector<std::pair<LogLevel, std::string>> lines;
  glmproxy::LogCallback callback() {
    return [this](LogLevel level, std::string_view message) {
      std::lock_guard lock(mu);
      lines.emplace_back(level, std::string(message));
    };
  }
};

// Creates a client whose POOL_WARM warm-up fails (nothing listens on port 1), logging at
// `level`; returns the lines its logger got.
std::vector<std::pair<LogLevel, std::string>> failed_warm_up_logged_at(LogLevel level) {
  Lines log;
  Config config;
  config.upstream.openai_base_url = "http://127.0.0.1:1/v4";
  config.pool.warm = true;
  config.timeouts.connect = 2000ms;
  config.retry.max_attempts = 1;  // fail at the first refusal, no backoff
  config.log_level = level;
  config.logger = log.callback();
  {
    auto client = make_client(config);  // a failed warm-up is logged, not an error
  }
  std::lock_guard lock(log.mu);
  return log.lines;
}

}  // namespace

TEST_CASE("knobs: GLMPROXY_EMBEDDING_MODEL is the model of an embed() that names none",
          "[knobs][embed]") {
  auto server = start_mock();
  Config config = config_for(*server);
  config.upstream.embedding_model = "embedding-2";
  auto client = make_client(config);
  EmbeddingRequest r;
  r.input = {"which model"};
  auto defaulted = client.embed(r);
  INFO((defaulted ? "" : defaulted.error().describe()));
  REQUIRE(defaulted);
  CHECK(defaulted->model == "embedding-2");  // the mock answers with the model it was asked for
  r.model = "embedding-3";                   // a request's own model wins
  auto named = client.embed(r);
  REQUIRE(named);
  CHECK(named->model == "embedding-3");
  const auto sent = server->recorded();
  REQUIRE(sent.size() == 2);
  CHECK(sent[0].body.find(R"("model":"embedding-2")") != std::string::npos);
  CHECK(sent[1].body.find(R"("model":"embedding-3")") != std::string::npos);
}

TEST_CASE("knobs: GLMPROXY_MODEL_CONCURRENCY holds each model to that many requests on the wire",
          "[knobs][admission]") {
  glmproxy::mock::MockOptions options;
  options.max_concurrent_requests = 1000;  // never refuses; counts peak_concurrency
  auto server = start_mock(options);
  Fault slow;  // every answer takes 500 ms, so the requests overlap
  slow.times = 0;
  slow.delay_before_headers = 500ms;
  server->add_fault(slow);
  Config config = config_for(*server);
  config.admission.model_concurrency = 2;  // POOL_MAX_CONNECTIONS stays 10
  config.pool.acquire_timeout = 60s;
  auto client = make_client(config);

  // Eight requests at once, four per model: two of each on the wire, the others wait.
  constexpr int kCalls = 8;
  std::atomic<int> ok{0}, done{0};
  for (int i = 0; i < kCalls; ++i) {
    ChatRequest r = test_support::numbered(i);
    r.model = i % 2 == 0 ? "glm-4.7" : "glm-4.5-air";
    client.complete_async(r, [&](Result<ChatResponse> reply) {
      ok += reply ? 1 : 0;
      ++done;
    });
  }
  const auto until = std::chrono::steady_clock::now() + 60s;
  while (done.load() < kCalls && std::chrono::steady_clock::now() < until) {
    std::this_thread::sleep_for(5ms);
  }
  REQUIRE(done.load() == kCalls);
  CHECK(ok.load() == kCalls);
  const auto stats = server->stats();
  INFO("peak concurrency at the mock: " << stats.peak_concurrency);
  CHECK(stats.peak_concurrency <= 4);  // two per model, never more
  CHECK(stats.peak_concurrency >= 3);  // the two models did not wait for each other
  CHECK(stats.concurrency_rejections == 0);
}

TEST_CASE("knobs: APIKEY_CACHE_SIZE bounds the tenant keys kept in memory", "[knobs][keys]") {
  auto server = start_mock(0);
  TwoKeys file;
  // One key kept: alternating keys evict each other, so every request reads the file again.
  CHECK(alternate_keys(*server, file, 1) >= 6);
  // The default keeps both: the file is read once per key.
  CHECK(alternate_keys(*server, file, Config{}.keys.cache_size) == 2);
}

TEST_CASE("knobs: GLMPROXY_LOG_LEVEL drops the log lines below it", "[knobs][log]") {
  // A failed warm-up is logged at Warn.
  const auto warn = failed_warm_up_logged_at(LogLevel::Warn);
  REQUIRE(warn.size() == 1);
  CHECK(warn[0].first == LogLevel::Warn);
  CHECK(warn[0].second.find("pool warm-up failed") != std::string::npos);
  CHECK(failed_warm_up_logged_at(LogLevel::Trace).size() == 1);
  CHECK(failed_warm_up_logged_at(LogLevel::Error).empty());
  CHECK(failed_warm_up_logged_at(LogLevel::Off).empty());
}
