// Tests that see bugs which once passed the whole suite (issue 14: nineteen realistic bugs were
// planted one at a time, and seven went unnoticed). Each case names the bug it catches; each
// was seen to fail with that bug planted. Through ProxyClient against the mock upstream.

#include <algorithm>
#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <functional>
#include <future>
#include <mutex>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "glmproxy/mock/mock_upstream.hpp"
#include "glmproxy/proxy_client.hpp"
#include "keys/key_store.hpp"
#include "support/key_file.hpp"
#include "support/mock_client.hpp"

using glmproxy::ChatRequest;
using glmproxy::ChatResponse;
using glmproxy::Config;
using glmproxy::EmbeddingRequest;
using glmproxy::EmbeddingResponse;
using glmproxy::ErrorCode;
using glmproxy::Protocol;
using glmproxy::ProxyClient;
using glmproxy::Result;
using glmproxy::StreamEvent;
using glmproxy::mock::Fault;
using glmproxy::mock::MockOptions;
using test_support::config_for;
using test_support::key_json;
using test_support::KeyFile;
using test_support::make_client;
using test_support::start_mock;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {

ChatRequest ask(std::string text, std::string model = {}) {
  ChatRequest r;
  r.messages = {{"user", std::move(text)}};
  r.model = std::move(model);
  return r;
}

// Counts complete_async answers and lets the test wait for a number of them.
class Answers {
 public:
  std::function<void(Result<ChatResponse>)> callback(std::size_t index) {
    return [this, index](Result<ChatResponse> r) {
      std::lock_guard lock(mu_);
      if (r) {
        ok_.push_back(index);
      } else if (r.error().code == ErrorCode::QueueFull) {
        full_.push_back(index);
      } else {
        other_.push_back(r.error().describe());
      }
      cv_.notify_all();
    };
  }
  /// True when `n` answers arrived within a generous bound.
  bool wait_for(std::size_t n) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, 60s, [&] { return ok_.size() + full_.size() + other_.size() >= n; });
  }
  std::vector<std::size_t> ok() const {
    std::lock_guard lock(mu_);
    return ok_;
  }
  std::vector<std::size_t> full() const {
    std::lock_guard lock(mu_);
    return full_;
  }
  std::vector<std::string> other() const {
    std::lock_guard lock(mu_);
    return other_;
  }

 private:
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::size_t> ok_, full_;
  std::vector<std::string> other_;
};

// The largest value `read` returned, sampled every millisecond on a thread of its own until
// stop() (or destruction, so that a failed REQUIRE does not leave the thread running).
class PeakSampler {
 public:
  explicit PeakSampler(std::function<int()> read)
      : read_(std::move(read)), thread_([this] {
          while (!done_.load()) {
            const int now = read_();
            if (now > peak_.load()) peak_.store(now);
            std::this_thread::sleep_for(1ms);
          }
        }) {}
  ~PeakSampler() { stop(); }
  PeakSampler(const PeakSampler&) = delete;
  PeakSampler& operator=(const PeakSampler&) = delete;
  void stop() {
    done_.store(true);
    if (thread_.joinable()) thread_.join();
  }
  int peak() const { return peak_.load(); }

 private:
  std::function<int()> read_;
  std::atomic<bool> done_{false};
  std::atomic<int> peak_{0};
  std::thread thread_;  // last: starts once the members it reads exist
};

// The value of an unlabelled sample in a Prometheus exposition, or -1 when it is missing.
double prometheus_sample(const std::string& text, const std::string& name) {
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(name + " ", 0) == 0) return std::stod(line.substr(name.size() + 1));
  }
  return -1;
}

}  // namespace

TEST_CASE("planted: the embedding cache key includes extra_json", "[planted][cache][embed]") {
  auto server = start_mock();
  Config config = config_for(*server);
  config.cache.enabled = true;
  auto client = make_client(config);
  EmbeddingRequest r;
  r.input = {"the same text"};
  r.extra_json = R"({"encoding_format":"float","user":"a"})";
  auto first = client.embed(r);
  INFO((first ? "" : first.error().describe()));
  REQUIRE(first);
  CHECK_FALSE(first->from_cache);
  CHECK(server->stats().embeddings_requests == 1);

  // Only extra_json differs: a different request, never the cached answer of the first.
  EmbeddingRequest other = r;
  other.extra_json = R"({"encoding_format":"float","user":"b"})";
  auto second = client.embed(other);
  REQUIRE(second);
  CHECK_FALSE(second->from_cache);
  CHECK(server->stats().embeddings_requests == 2);
  EmbeddingRequest none = r;
  none.extra_json.clear();
  auto third = client.embed(none);
  REQUIRE(third);
  CHECK_FALSE(third->from_cache);
  CHECK(server->stats().embeddings_requests == 3);
  const auto recorded = server->recorded();
  REQUIRE(recorded.size() == 3);
  CHECK(recorded[0].body.find(R"("user":"a")") != std::string::npos);
  CHECK(recorded[1].body.find(R"("user":"b")") != std::string::npos);

  // The same members in another order and spacing are the same request: a hit.
  EmbeddingRequest respelled = r;
  respelled.extra_json = R"( { "user" : "a", "encoding_format" : "float" } )";
  auto hit = client.embed(respelled);
  REQUIRE(hit);
  CHECK(hit->from_cache);
  CHECK(hit->embeddings == first->embeddings);
  CHECK(server->stats().embeddings_requests == 3);
}

TEST_CASE("planted: BATCH_MAX_QUEUE_SIZE accepts N outstanding requests and refuses the N+1th",
          "[planted][batch]") {
  auto server = start_mock();
  Fault hold;  // answers take long enough that none returns before all are pushed
  hold.times = 0;
  hold.delay_before_headers = 2000ms;
  server->add_fault(hold);
  Config config = config_for(*server);
  config.batch.enabled = true;
  config.batch.max_queue_size = 4;
  config.batch.max_size = 2;  // batches go out at once: two wait on the wire, two more too
  config.batch.window = 50ms;
  config.pool.acquire_timeout = 60s;
  auto client = make_client(config);

  constexpr std::size_t kBound = 4;
  Answers answers;
  for (std::size_t i = 0; i <= kBound; ++i) {
    client.complete_async(ask("queued " + std::to_string(i)), answers.callback(i));
  }
  REQUIRE(answers.wait_for(kBound + 1));
  CHECK(answers.other().empty());
  // Exactly the bound is accepted; the request that would make it kBound + 1 is refused.
  CHECK(answers.ok().size() == kBound);
  REQUIRE(answers.full().size() == 1);
  CHECK(answers.full().front() == kBound);  // the last one pushed, not an earlier one
  CHECK(server->stats().chat_requests == kBound);
  CHECK(client.metrics().batching.queue_full == 1);
  CHECK(client.metrics().batching.outstanding == 0);

  // Answered requests free their places: the next kBound are all accepted again.
  server->clear_faults();
  Answers again;
  for (std::size_t i = 0; i < kBound; ++i) {
    client.complete_async(ask("again " + std::to_string(i)), again.callback(i));
  }
  REQUIRE(again.wait_for(kBound));
  CHECK(again.ok().size() == kBound);
  CHECK(again.full().empty());
  CHECK(again.other().empty());
}

TEST_CASE("planted: POOL_MAX_CONNECTIONS bounds requests on the wire across two models",
          "[planted][pool]") {
  MockOptions options;
  options.max_concurrent_requests = 1000;  // never refuses; makes the mock count its peak
  options.record_limit = 0;
  auto server = start_mock(options);
  Config config = config_for(*server);
  config.pool.max_connections = 3;
  config.pool.min_connections = 0;
  config.pool.acquire_timeout = 60s;

  // Default: each model may use the whole pool. Two: model A is held at its limit while B
  // passes it, which is where a slot too many was once handed out.
  const int model_concurrency = GENERATE(0, 2);
  config.admission.model_concurrency = model_concurrency;
  INFO("GLMPROXY_MODEL_CONCURRENCY=" << model_concurrency);
  auto client = make_client(config);
  // libcurl's own connection cap (CURLMOPT_MAX_TOTAL_CONNECTIONS) keeps a request admitted
  // over the pool waiting inside curl, so the mock alone cannot see it: the client's count of
  // requests on the wire is sampled too, every millisecond.
  PeakSampler client_peak([&] { return client.diagnostics().in_flight; });

  // Two long requests of model A first, so that A sits at its limit while the rest come and go.
  Fault long_hold;
  long_hold.times = 2;
  long_hold.delay_before_headers = 1500ms;
  server->add_fault(long_hold);
  Answers answers;
  std::size_t sent = 0;
  for (; sent < 2; ++sent) {
    client.complete_async(ask("pool " + std::to_string(sent), "glm-a"), answers.callback(sent));
  }
  const auto deadline = std::chrono::steady_clock::now() + 30s;
  while (server->stats().requests < 2 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(5ms);
  }
  REQUIRE(server->stats().requests == 2);

  // Then both models, A first: each B answer frees a slot while the A ahead of it is held.
  Fault short_hold;
  short_hold.times = 0;
  short_hold.delay_before_headers = 100ms;
  server->add_fault(short_hold);
  constexpr std::size_t kRequests = 16;
  for (; sent < kRequests; ++sent) {
    client.complete_async(ask("pool " + std::to_string(sent), sent % 2 == 0 ? "glm-a" : "glm-b"),
                          answers.callback(sent));
  }
  REQUIRE(answers.wait_for(kRequests));
  client_peak.stop();
  CHECK(answers.other().empty());
  CHECK(answers.ok().size() == kRequests);
  const auto stats = server->stats();
  CHECK(stats.concurrency_rejections == 0);
  // Never more than the pool on the wire, and the pool was used in full.
  CHECK(client_peak.peak() <= 3);
  CHECK(stats.peak_concurrency <= 3);
  CHECK(stats.peak_concurrency == 3);
}

TEST_CASE("planted: a stream's usage is charged to its tenant once", "[planted][keys][stream]") {
  auto server = start_mock();
  Fault tokens;  // every answer reports 30 + 12 tokens
  tokens.times = 0;
  tokens.prompt_tokens = 30;
  tokens.completion_tokens = 12;
  server->add_fault(tokens);
  KeyFile file(R"({"keys":[)" + key_json("pk_stream_openai") + "," +
               key_json("pk_stream_anthropic") + "]}");
  Config config = config_for(*server);
  config.keys.file = file.path.string();
  {
    auto client = make_client(config);
    for (const auto& [key, protocol] : std::vector<std::pair<std::string, Protocol>>{
             {"pk_stream_openai", Protocol::OpenAI},
             {"pk_stream_anthropic", Protocol::Anthropic}}) {
      INFO(key);
      ChatRequest r = ask("stream for " + key);
      r.protocol = protocol;
      r.api_key = key;
      std::size_t events = 0;
      auto streamed = client.stream(r, [&](const StreamEvent&) {
        ++events;
        return true;
      });
      INFO((streamed ? "" : streamed.error().describe()));
      REQUIRE(streamed);
      CHECK(events > 0);
      CHECK(streamed->usage.total_tokens == 42);
      auto stats = client.key_stats(key);
      REQUIRE(stats);
      // Exactly what the stream reported: not twice, not nothing.
      CHECK(stats->current_usage.tokens_used_in_current_window == streamed->usage.total_tokens);
      CHECK(stats->total_lifetime_tokens == streamed->usage.total_tokens);

      // A second stream adds its own once more.
      r.messages[0].content += " again";
      auto second = client.stream(r, [](const StreamEvent&) { return true; });
      REQUIRE(second);
      stats = client.key_stats(key);
      REQUIRE(stats);
      CHECK(stats->total_lifetime_tokens ==
            streamed->usage.total_tokens + second->usage.total_tokens);
    }
    CHECK(server->stats().stream_requests == 4);
  }  // destruction writes the pending usage to the key file
  auto store = glmproxy::detail::KeyStore::open(file.path.string());
  REQUIRE(store);
  for (const char* key : {"pk_stream_openai", "pk_stream_anthropic"}) {
    INFO(key);
    auto record = (*store)->find(key);
    REQUIRE(record);
    REQUIRE(record->has_value());
    CHECK((**record).total_lifetime_tokens == 84);
  }
}

TEST_CASE("planted: APIKEY_CACHE_TTL_MS=0 is refused by create() as by from_env()",
          "[planted][keys][config]") {
  auto server = start_mock();
  Config config = config_for(*server);
  config.keys.cache_ttl = 0ms;
  auto refused = ProxyClient::create(config);
  REQUIRE_FALSE(refused);
  CHECK(refused.error().code == ErrorCode::InvalidConfig);
  CHECK(refused.error().message.find("APIKEY_CACHE_TTL_MS must be an integer in [1, ") !=
        std::string::npos);
  config.keys.cache_ttl = 1ms;
  CHECK(ProxyClient::create(config));
}

TEST_CASE("planted: coalesced_requests_total counts the requests that joined, not the leaders",
          "[planted][coalesce][metrics]") {
  auto server = start_mock();
  Fault slow;  // the leader's answer takes long enough for every other request to join it
  slow.delay_before_headers = 800ms;
  slow.path_contains = "chat/completions";
  server->add_fault(slow);
  Fault slow_embed = slow;
  slow_embed.path_contains = "embeddings";
  server->add_fault(slow_embed);
  Config config = config_for(*server);  // cache off, coalescing on (the default)
  auto client = make_client(config);

  constexpr int kChat = 8, kEmbed = 5;
  std::promise<void> go;
  std::shared_future<void> start = go.get_future().share();
  std::atomic<int> ok{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < kChat; ++i) {
    threads.emplace_back([&] {
      start.wait();
      if (client.complete(ask("the same question"))) ++ok;
    });
  }
  for (int i = 0; i < kEmbed; ++i) {
    threads.emplace_back([&] {
      EmbeddingRequest r;
      r.input = {"the same text"};
      start.wait();
      if (client.embed(r)) ++ok;
    });
  }
  go.set_value();
  for (auto& t : threads) t.join();
  CHECK(ok == kChat + kEmbed);

  const auto stats = server->stats();
  const auto m = client.metrics();
  const std::uint64_t calls = stats.chat_requests + stats.embeddings_requests;
  INFO("upstream calls " << calls << ", leaders " << m.coalescing.leaders << ", joined "
                         << m.coalescing.joined);
  // Every request either led (and made an upstream call) or joined one in flight.
  CHECK(m.coalescing.leaders == calls);
  CHECK(m.coalescing.leaders + m.coalescing.joined == kChat + kEmbed);
  // With an 800 ms answer, all but the first of each kind joined.
  CHECK(stats.chat_requests == 1);
  CHECK(stats.embeddings_requests == 1);
  CHECK(m.coalescing.joined == kChat - 1 + kEmbed - 1);
  CHECK(prometheus_sample(client.prometheus_text(), "glm_proxy_coalesced_requests_total") ==
        static_cast<double>(m.coalescing.joined));
  CHECK(m.to_json().find(R"("joined":)" + std::to_string(kChat - 1 + kEmbed - 1)) !=
        std::string::npos);
}
