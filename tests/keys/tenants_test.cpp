// Tenant keys through ProxyClient: who may call, token quotas over the rolling 5-hour window,
// the key cache, usage written back to the key file, and upstream protection (AIMD concurrency,
// circuit breaker).

#include <sys/stat.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <future>
#include <mutex>
#include <optional>
#include <random>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "glmproxy/mock/mock_upstream.hpp"
#include "glmproxy/proxy_client.hpp"
#include "keys/key_store.hpp"
#include "keys/tenants.hpp"
#include "support/key_file.hpp"
#include "support/mock_client.hpp"

using glmproxy::ChatRequest;
using glmproxy::ChatResponse;
using glmproxy::Config;
using glmproxy::ErrorCode;
using glmproxy::ProxyClient;
using glmproxy::Result;
using glmproxy::detail::Tenants;
using glmproxy::mock::Fault;
using test_support::config_for;
using test_support::key_json;
using test_support::KeyFile;
using test_support::keys_file;
using test_support::make_client;
using test_support::start_mock;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {

ChatRequest as(const std::string& key, const std::string& text = "hello") {
  ChatRequest r;
  r.messages = {{"user", text}};
  r.api_key = key;
  return r;
}

// A wall clock the test moves by hand.
struct ManualWallClock {
  std::shared_ptr<std::atomic<std::int64_t>> s =
      std::make_shared<std::atomic<std::int64_t>>(1'780'000'000);  // 2026-05-28
  std::function<std::chrono::system_clock::time_point()> fn() const {
    auto p = s;
    return [p] { return std::chrono::system_clock::time_point(std::chrono::seconds(p->load())); };
  }
  void advance(std::chrono::seconds d) const { s->fetch_add(d.count()); }
};

}  // namespace

TEST_CASE("tenants: 400-token requests against a 1000-token quota, 5 hours later, again",
          "[keys][quota]") {
  auto server = start_mock();
  Fault tokens;  // every answer reports 200 + 200 tokens
  tokens.times = 0;
  tokens.prompt_tokens = 200;
  tokens.completion_tokens = 200;
  server->add_fault(tokens);
  KeyFile file(keys_file({key_json("pk_quota_1", 1000)}));
  Config config = config_for(*server);
  config.keys.file = file.path.string();
  ManualWallClock wall;
  config.wall_clock = wall.fn();
  auto client = make_client(config);

  for (int i = 0; i < 3; ++i) {
    auto r = client.complete(as("pk_quota_1", "q" + std::to_string(i)));
    INFO(i << ": " << (r ? "" : r.error().describe()));
    REQUIRE(r);
    CHECK(r->usage.total_tokens == 400);
  }
  auto refused = client.complete(as("pk_quota_1", "q3"));
  REQUIRE_FALSE(refused);
  CHECK(refused.error().code == ErrorCode::QuotaExceeded);
  REQUIRE(refused.error().retry_after.has_value());
  CHECK(*refused.error().retry_after > 4h);
  CHECK(*refused.error().retry_after <= 5h);
  CHECK(refused.error().message.find("pk_quota_1") == std::string::npos);  // never the key
  CHECK(server->stats().chat_requests == 3);

  auto stats = client.key_stats("pk_quota_1");
  REQUIRE(stats);
  CHECK(stats->current_usage.tokens_used_in_current_window == 1200);
  CHECK(stats->current_usage.remaining_tokens == 0);
  CHECK(stats->total_lifetime_tokens == 1200);
  CHECK(stats->key == "pk_q…");
  CHECK(stats->to_json().find("\"tokens_used_in_current_window\":1200") != std::string::npos);

  wall.advance(std::chrono::hours(5));
  auto again = client.complete(as("pk_quota_1", "q4"));
  INFO((again ? "" : again.error().describe()));
  REQUIRE(again);
  CHECK(client.key_stats("pk_quota_1")->current_usage.tokens_used_in_current_window == 400);
}

TEST_CASE("tenants: unknown, empty and expired keys, the model override", "[keys]") {
  auto server = start_mock();
  KeyFile file(keys_file(
      {key_json("pk_ok", 100000, R"(,"model":"glm-4.5-air")"),
       R"({"key":"pk_old","name":"old","token_limit_per_5h":100,"expiry_date":"2020-01-01T00:00:00Z","created_at":"2019-01-01T00:00:00Z","total_lifetime_tokens":0,"usage_windows":[]})"}));
  Config config = config_for(*server);
  config.keys.file = file.path.string();
  auto client = make_client(config);
  auto unknown = client.complete(as("pk_nope"));
  REQUIRE_FALSE(unknown);
  CHECK(unknown.error().code == ErrorCode::Unauthorized);
  auto empty = client.complete(as(""));
  REQUIRE_FALSE(empty);
  CHECK(empty.error().code == ErrorCode::Unauthorized);
  auto expired = client.complete(as("pk_old"));
  REQUIRE_FALSE(expired);
  CHECK(expired.error().code == ErrorCode::Forbidden);
  CHECK(expired.error().message.find("2020-01-01") != std::string::npos);
  CHECK(server->stats().chat_requests == 0);

  ChatRequest r = as("pk_ok");
  r.model = "glm-4.7";
  auto ok = client.complete(r);
  REQUIRE(ok);
  auto recorded = server->recorded();
  REQUIRE(recorded.size() == 1);
  CHECK(recorded[0].body.find("\"model\":\"glm-4.5-air\"") != std::string::npos);
  // Async refusals still call back once.
  std::promise<ErrorCode> code;
  client.complete_async(as("pk_nope"), [&](Result<ChatResponse> res) {
    code.set_value(res ? ErrorCode::Internal : res.error().code);
  });
  CHECK(code.get_future().get() == ErrorCode::Unauthorized);
}

TEST_CASE("tenants: a malformed key file fails create() naming the file and position", "[keys]") {
  auto server = start_mock();
  KeyFile file("{\"keys\": [ {\"key\": \"pk_a\", \"name\": \"a\",, } ]}");
  Config config = config_for(*server);
  config.keys.file = file.path.string();
  auto client = ProxyClient::create(config);
  REQUIRE_FALSE(client);
  CHECK(client.error().code == ErrorCode::InvalidConfig);
  CHECK(client.error().message.find(file.path.string()) != std::string::npos);
  CHECK(client.error().message.find("1:") != std::string::npos);
}

TEST_CASE("tenants: the key cache reads the file once for 10,000 requests, TTL and invalidate",
          "[keys]") {
  auto server = start_mock(0);
  KeyFile file(keys_file({key_json("pk_many", 1'000'000'000), key_json("pk_gone", 1'000'000)}));
  Config config = config_for(*server);
  config.keys.file = file.path.string();
  config.keys.cache_ttl = 60'000ms;
  // No usage write while the test rewrites the file: the writer thread's read-modify-write
  // could put a revoked key back (the file is the test's here, not the writer's).
  config.rate_limit.max_batch_size = 1'000'000;
  config.rate_limit.batch_interval = 3'600'000ms;
  auto clock_ms = std::make_shared<std::atomic<std::int64_t>>(0);
  config.clock = [clock_ms] {
    return std::chrono::steady_clock::time_point(std::chrono::milliseconds(clock_ms->load()));
  };
  auto client = make_client(config);
  const auto reads_before = client.diagnostics().key_file_reads;
  std::atomic<int> ok{0}, done{0};
  for (int i = 0; i < 10'000; ++i) {
    client.complete_async(as("pk_many", "n" + std::to_string(i)), [&](Result<ChatResponse> r) {
      ok += r ? 1 : 0;
      ++done;
    });
  }
  while (done.load() < 10'000) std::this_thread::sleep_for(5ms);
  CHECK(ok == 10'000);
  CHECK(client.diagnostics().key_file_reads - reads_before <= 1);

  // Revoked in the file: still valid until the cached record's TTL runs out, however often used.
  REQUIRE(client.complete(as("pk_gone")));
  file.write(keys_file({key_json("pk_many", 1'000'000'000)}));
  REQUIRE(client.complete(as("pk_gone", "again")));
  clock_ms->fetch_add(60'000);
  auto revoked = client.complete(as("pk_gone", "third"));
  REQUIRE_FALSE(revoked);
  CHECK(revoked.error().code == ErrorCode::Unauthorized);
  // invalidate_key() takes effect at once.
  file.write(keys_file({key_json("pk_many", 1'000'000'000), key_json("pk_new", 1000)}));
  auto before = client.complete(as("pk_new"));
  REQUIRE(before);  // never cached as unknown before, so read now
  file.write(keys_file({key_json("pk_many", 1'000'000'000)}));
  client.invalidate_key("pk_new");
  auto after = client.complete(as("pk_new", "x"));
  REQUIRE_FALSE(after);
  CHECK(after.error().code == ErrorCode::Unauthorized);
}

TEST_CASE("tenants: usage is written in batches and adds up to what the upstream reported",
          "[keys][usage]") {
  auto server = start_mock(0);
  std::vector<std::string> records;
  for (int t = 0; t < 10; ++t)
    records.push_back(key_json("pk_t" + std::to_string(t), 1'000'000'000));
  KeyFile file(keys_file(records));
  Config config = config_for(*server);
  config.keys.file = file.path.string();
  config.rate_limit.batch_interval = 200ms;
  config.rate_limit.max_batch_size = 500;
  std::int64_t reported = 0;
  std::uint64_t writes = 0;
  const auto start = std::chrono::steady_clock::now();
  {
    auto client = make_client(config);
    std::atomic<std::int64_t> sum{0};
    std::atomic<int> done{0};
    for (int i = 0; i < 10'000; ++i) {
      client.complete_async(as("pk_t" + std::to_string(i % 10), "u" + std::to_string(i)),
                            [&](Result<ChatResponse> r) {
                              if (r) sum += r->usage.total_tokens;
                              ++done;
                            });
    }
    while (done.load() < 10'000) std::this_thread::sleep_for(5ms);
    reported = sum.load();
    writes = client.diagnostics().key_file_writes;
  }  // destruction writes what is still pending
  const auto seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  CHECK(writes + 1 <= static_cast<std::uint64_t>(seconds / 0.2 + 10'000 / 500 + 1));
  auto store = glmproxy::detail::KeyStore::open(file.path.string());
  REQUIRE(store);
  std::int64_t in_file = 0;
  for (int t = 0; t < 10; ++t) {
    auto record = (*store)->find("pk_t" + std::to_string(t));
    REQUIRE(record);
    REQUIRE(record->has_value());
    in_file += (**record).total_lifetime_tokens;
    CHECK_FALSE((**record).last_used.empty());
    CHECK_FALSE((**record).usage_windows.empty());
  }
  CHECK(reported > 0);
  CHECK(in_file == reported);
}

TEST_CASE("upstream protection: 100 concurrent calls against a 2-request allowance succeed",
          "[admission]") {
  glmproxy::mock::MockOptions options;
  options.max_concurrent_requests = 2;
  options.record_limit = 0;
  auto server = start_mock(options);
  Fault slow;  // each answer takes 50 ms, so requests overlap
  slow.times = 0;
  slow.delay_before_headers = 50ms;
  server->add_fault(slow);
  Config config = config_for(*server);
  config.pool.acquire_timeout = 60s;
  auto client = make_client(config);
  std::vector<std::future<Result<ChatResponse>>> calls;
  std::vector<std::thread> threads;
  std::vector<Result<ChatResponse>> results(100, glmproxy::make_error(ErrorCode::Internal, ""));
  for (int i = 0; i < 100; ++i) {
    threads.emplace_back([&, i] {
      results[static_cast<std::size_t>(i)] = client.complete(as("", "c" + std::to_string(i)));
    });
  }
  for (auto& t : threads) t.join();
  int ok = 0;
  for (auto& r : results) ok += r ? 1 : 0;
  CHECK(ok == 100);
  const auto stats = server->stats();
  CHECK(stats.peak_concurrency <= 2);
  // The first burst (POOL_MAX_CONNECTIONS = 10 at once) meets 8 refusals; after that the
  // limit has come down and only the odd probe is refused.
  INFO("1302 answers: " << stats.concurrency_rejections);
  CHECK(stats.concurrency_rejections <= 8 + 5);
  CHECK(client.diagnostics().concurrency_decreases >= 1);
}

TEST_CASE("upstream protection: the circuit breaker opens, fails fast, probes, closes",
          "[admission]") {
  auto server = start_mock();
  Fault down;
  down.times = 3;
  down.status = 503;
  down.body = R"({"error":{"message":"down"}})";
  server->add_fault(down);
  Config config = config_for(*server);
  config.retry.max_attempts = 1;
  config.admission.breaker_failures = 3;
  config.admission.breaker_cooldown = 300ms;
  auto client = make_client(config);
  for (int i = 0; i < 3; ++i) {
    auto r = client.complete(as("", "b" + std::to_string(i)));
    REQUIRE_FALSE(r);
    CHECK(r.error().http_status == 503);
  }
  auto fast = client.complete(as("", "b3"));
  REQUIRE_FALSE(fast);
  CHECK(fast.error().upstream_code == "circuit_open");
  REQUIRE(fast.error().retry_after.has_value());
  CHECK(*fast.error().retry_after <= 300ms);
  CHECK(server->stats().chat_requests == 3);
  std::this_thread::sleep_for(350ms);
  auto probe = client.complete(as("", "b4"));
  INFO((probe ? "" : probe.error().describe()));
  REQUIRE(probe);  // the upstream is back: the probe succeeds and closes the breaker
  REQUIRE(client.complete(as("", "b5")));
  CHECK(server->stats().chat_requests == 5);
  CHECK(client.diagnostics().breaker_opened == 1);
}

// --- untrusted counts: sums stop at INT64_MAX (UBSan aborts the asan preset on an overflow) -----

namespace {

constexpr std::int64_t kMax = INT64_MAX;

std::unique_ptr<Tenants> must_create(const Config& config) {
  auto tenants = Tenants::create(config);
  INFO((tenants ? "" : tenants.error().describe()));
  REQUIRE(tenants);
  return std::move(*tenants);
}

glmproxy::detail::KeyRecord read_back(const KeyFile& file, const std::string& key) {
  auto store = glmproxy::detail::KeyStore::open(file.path.string());
  INFO((store ? "" : store.error().describe()));
  REQUIRE(store);
  auto record = (*store)->find(key);
  REQUIRE(record);
  REQUIRE(record->has_value());
  return **record;
}

}  // namespace

TEST_CASE("tenants: record_usage with INT64_MAX twice stops at INT64_MAX", "[keys][usage]") {
  KeyFile file(keys_file({key_json("pk_huge", 1000)}));
  Config config;
  config.keys.file = file.path.string();
  ManualWallClock wall;
  config.wall_clock = wall.fn();
  {
    auto tenants = must_create(config);
    REQUIRE(tenants->admit("pk_huge"));
    tenants->record_usage("pk_huge", kMax);
    tenants->record_usage("pk_huge", kMax);
    wall.advance(10min);  // another bucket: the window's total and the pending batch both add up
    tenants->record_usage("pk_huge", kMax);
    tenants->record_usage("pk_huge", -5);  // negative: nothing
    tenants->record_usage("pk_huge", INT64_MIN);
    auto stats = tenants->stats("pk_huge");
    REQUIRE(stats);
    CHECK(stats->total_lifetime_tokens == kMax);
    CHECK(stats->current_usage.tokens_used_in_current_window == kMax);
    CHECK(stats->current_usage.remaining_tokens == 0);
    CHECK_THAT(stats->to_json(), Catch::Contains("\"total_lifetime_tokens\":9223372036854775807"));
    auto refused = tenants->admit("pk_huge");
    REQUIRE_FALSE(refused);
    CHECK(refused.error().code == ErrorCode::QuotaExceeded);
    CHECK(refused.error().retry_after.has_value());
    tenants->flush();
  }
  const auto record = read_back(file, "pk_huge");
  CHECK(record.total_lifetime_tokens == kMax);
  REQUIRE(record.usage_windows.size() == 2);
  CHECK(record.usage_windows[0].tokens == kMax);
  CHECK(record.usage_windows[1].tokens == kMax);
}

TEST_CASE("tenants: a key file with counts near INT64_MAX, usage added", "[keys][usage]") {
  ManualWallClock wall;
  const auto now = std::chrono::system_clock::time_point(std::chrono::seconds(wall.s->load()));
  const std::string recent = glmproxy::detail::format_iso8601(now - 20min);
  const std::string older = glmproxy::detail::format_iso8601(now - 1h);
  KeyFile file(keys_file(
      {R"({"key":"pk_near","name":"near","token_limit_per_5h":9223372036854775807,)"
       R"("expiry_date":"9999-12-31T23:59:59Z","total_lifetime_tokens":9223372036854775800,)"
       R"("usage_windows":[{"window_start":")" +
       older + R"(","tokens_used":9223372036854775807},{"window_start":")" + recent +
       R"(","tokens_used":9223372036854775000}]})"}));
  Config config;
  config.keys.file = file.path.string();
  config.wall_clock = wall.fn();
  {
    auto tenants = must_create(config);
    // The window already holds more than INT64_MAX tokens: at INT64_MAX, the limit, refused.
    auto refused = tenants->admit("pk_near");
    REQUIRE_FALSE(refused);
    CHECK(refused.error().code == ErrorCode::QuotaExceeded);
    tenants->record_usage("pk_near", 1'000);
    auto stats = tenants->stats("pk_near");
    REQUIRE(stats);
    CHECK_FALSE(stats->is_expired);  // year 9999: past system_clock's range, never expires
    CHECK(stats->total_lifetime_tokens == kMax);
    CHECK(stats->current_usage.tokens_used_in_current_window == kMax);
    CHECK(stats->current_usage.remaining_tokens == 0);
    tenants->flush();
  }
  const auto record = read_back(file, "pk_near");
  CHECK(record.total_lifetime_tokens == kMax);
  CHECK(record.expiry_date == "9999-12-31T23:59:59Z");
  REQUIRE(record.usage_windows.size() == 3);
  CHECK(record.usage_windows[0].tokens == kMax);
  CHECK(record.usage_windows[1].tokens == 9223372036854775000);
  CHECK(record.usage_windows[2].tokens == 1'000);
}

TEST_CASE("tenants: negative counts in the key file are refused, naming the index not the key",
          "[keys]") {
  const std::string secret = "pk_negative_secret";
  for (const std::string& field :
       {std::string(R"("token_limit_per_5h":-1)"),
        std::string(R"("token_limit_per_5h":10,"total_lifetime_tokens":-1)"),
        std::string(R"("token_limit_per_5h":10,"usage_windows":[)"
                    R"({"window_start":"2026-01-01T00:00:00Z",)"
                    R"("tokens_used":-9223372036854775808}])")}) {
    KeyFile file(
        keys_file({key_json("pk_fine", 10), R"({"key":")" + secret + R"(",)" + field + "}"}));
    Config config;
    config.keys.file = file.path.string();
    auto tenants = Tenants::create(config);
    INFO(field);
    REQUIRE_FALSE(tenants);
    CHECK(tenants.error().code == ErrorCode::InvalidConfig);
    CHECK_THAT(tenants.error().message, Catch::Contains("keys[1]."));
    CHECK_THAT(tenants.error().message, Catch::Contains(">= "));
    CHECK(tenants.error().message.find(secret) == std::string::npos);
  }
}

TEST_CASE("tenants: APIKEYS_FILE=/dev/zero, a directory or a FIFO fails create(), never throws",
          "[keys]") {
  auto server = start_mock();
  KeyFile file(keys_file({key_json("pk_a", 10)}));
  const std::string fifo = (file.dir / "keys.fifo").string();
  REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
  for (const std::string& path : {std::string("/dev/zero"), file.dir.string(), fifo}) {
    INFO(path);
    auto env = Config::from_env([&](std::string_view name) -> std::optional<std::string> {
      if (name == "APIKEYS_FILE") return path;
      if (name == "ZAI_API_KEY") return "sk-test-key-123456";
      return std::nullopt;
    });
    REQUIRE(env);
    Config config = config_for(*server);
    config.keys = env->keys;
    CHECK(config.keys.file == path);
    CHECK_NOTHROW([&] {
      auto client = ProxyClient::create(config);
      REQUIRE_FALSE(client);
      CHECK(client.error().code == ErrorCode::InvalidConfig);
      CHECK_THAT(client.error().message, Catch::StartsWith("APIKEYS_FILE " + path + ": it is "));
      CHECK_THAT(client.error().message, Catch::Contains("not a regular file"));
    }());
  }
}

// --- exceptions: none leaves Tenants, none ends its writer thread ------------------------------

namespace {

struct Lines {
  std::mutex mu;
  std::vector<std::string> lines;
  std::atomic<bool> logger_throws{false};
  std::function<void(glmproxy::LogLevel, std::string_view)> fn() {
    return [this](glmproxy::LogLevel level, std::string_view line) {
      {
        std::lock_guard lock(mu);
        if (level == glmproxy::LogLevel::Error) lines.emplace_back(line);
      }
      if (logger_throws) throw std::runtime_error("logger broke");
    };
  }
  bool wait_for(const std::string& text) {
    for (int i = 0; i < 500; ++i) {
      {
        std::lock_guard lock(mu);
        for (const std::string& l : lines) {
          if (l.find(text) != std::string::npos) return true;
        }
      }
      std::this_thread::sleep_for(10ms);
    }
    return false;
  }
};

}  // namespace

TEST_CASE("tenants: a throwing wall clock is an Internal error, never an exception",
          "[keys][exceptions]") {
  KeyFile file(keys_file({key_json("pk_clock", 1000)}));
  auto broken = std::make_shared<std::atomic<bool>>(false);
  Config config;
  config.keys.file = file.path.string();
  config.wall_clock = [broken] {
    if (*broken) throw std::runtime_error("the clock broke");
    return std::chrono::system_clock::time_point(std::chrono::seconds(1'780'000'000));
  };
  config.rate_limit.batch_interval = 20ms;
  Lines log;
  config.logger = log.fn();
  auto tenants = must_create(config);
  tenants->record_usage("pk_clock", 10);  // pending, written by the writer thread in 20 ms...
  *broken = true;                         // ...which then finds the clock broken
  CHECK(log.wait_for("usage not written: the clock broke"));
  CHECK_NOTHROW([&] {
    auto admitted = tenants->admit("pk_clock");
    REQUIRE_FALSE(admitted);
    CHECK(admitted.error().code == ErrorCode::Internal);
    CHECK_THAT(admitted.error().message, Catch::Contains("the clock broke"));
    auto stats = tenants->stats("pk_clock");
    REQUIRE_FALSE(stats);
    CHECK(stats.error().code == ErrorCode::Internal);
    tenants->record_usage("pk_clock", 10);
    tenants->flush();
  }());
  CHECK(log.wait_for("a request's usage was not counted: the clock broke"));
  *broken = false;
  auto stats = tenants->stats("pk_clock");
  REQUIRE(stats);
  CHECK(stats->total_lifetime_tokens == 10);  // counted in memory before the clock broke
}

TEST_CASE("tenants: a failed usage write on the writer thread is logged, a throwing logger too",
          "[keys][exceptions]") {
  KeyFile file(keys_file({key_json("pk_write", 1000)}));
  Config config;
  config.keys.file = file.path.string();
  config.rate_limit.batch_interval = 10ms;
  Lines log;
  config.logger = log.fn();
  auto tenants = must_create(config);
  REQUIRE(tenants->admit("pk_write"));
  // The key file replaced by a directory: the writer's read before it writes refuses it.
  const fs::path saved = file.dir / "saved.json";
  fs::rename(file.path, saved);
  fs::create_directory(file.path);
  tenants->record_usage("pk_write", 5);
  CHECK(log.wait_for("tenant keys: a usage batch was lost: APIKEYS_FILE " + file.path.string() +
                     ": it is a directory, not a regular file"));
  // A logger that throws does not take the writer thread (or the process) down.
  log.logger_throws = true;
  tenants->record_usage("pk_write", 6);
  bool second_logged = false;
  for (int i = 0; i < 500 && !second_logged; ++i) {
    std::this_thread::sleep_for(10ms);
    std::lock_guard lock(log.mu);
    second_logged = log.lines.size() >= 2;
  }
  CHECK(second_logged);
  {
    std::lock_guard lock(log.mu);
    for (const std::string& line : log.lines) CHECK(line.find("pk_write") == std::string::npos);
  }
  // The file back: the writer still runs and writes the next batch.
  log.logger_throws = false;
  fs::remove(file.path);
  fs::rename(saved, file.path);
  tenants->record_usage("pk_write", 7);
  for (int i = 0; i < 500 && tenants->file_writes() == 0; ++i) std::this_thread::sleep_for(10ms);
  CHECK(tenants->file_writes() == 1);
  CHECK(read_back(file, "pk_write").total_lifetime_tokens == 7);  // the lost batches stay lost
}
