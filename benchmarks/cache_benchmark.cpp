// The response-cache hit path for a ~1 KB request: ProxyClient::complete() answered from the
// cache (key hash + lookup + copy-out, no network, no thread hand-off), on 1 and 2 threads, and
// its parts on their own.
//
//   build/release/benchmarks/cache_benchmark --benchmark_repetitions=5
//   (scripts/bench-cache.sh runs it and writes the figures into docs/performance.md)

#include <benchmark/benchmark.h>
#include <curl/curl.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "cache/cache_key.hpp"
#include "cache/lru_cache.hpp"
#include "glmproxy/glmproxy.hpp"
#include "glmproxy/mock/mock_upstream.hpp"
#include "core/histogram.hpp"

namespace {

using Clock = std::chrono::steady_clock;

// About 1 KB of request: a system prompt, three turns and some parameters.
glmproxy::ChatRequest request_1kb() {
  glmproxy::ChatRequest r;
  r.system = std::string(200, 's');
  r.messages = {{"user", std::string(300, 'u')},
                {"assistant", std::string(200, 'a')},
                {"user", std::string(300, 'q')}};
  r.temperature = 0.7;
  r.max_tokens = 512;
  r.extra_json = R"({"user":"bench","tool_choice":"auto"})";
  return r;
}

// Clients with the cache on (metrics on and off), warmed with the answer, shared by the
// benchmark threads.
glmproxy::ProxyClient& cached_client(bool metrics = true) {
  static auto server = glmproxy::mock::MockUpstream::start();
  auto make = [](bool with_metrics) {
    glmproxy::Config config;
    config.upstream.api_key = "sk-bench";
    config.upstream.openai_base_url = server->base_url() + "/api/paas/v4";
    config.cache.enabled = true;
    config.metrics.enabled = with_metrics;
    auto c = glmproxy::ProxyClient::create(config);
    auto warm = c->complete(request_1kb());
    if (!warm) std::abort();
    return std::make_unique<glmproxy::ProxyClient>(std::move(*c));
  };
  static auto with = make(true);
  static auto without = make(false);
  return metrics ? *with : *without;
}

// p50/p99 of one thread's samples, averaged over the threads (Counter::kAvgThreads).
void report(benchmark::State& state, std::vector<double>& ns) {
  if (ns.empty()) return;
  std::sort(ns.begin(), ns.end());
  state.counters["p50_ns"] = benchmark::Counter(ns[ns.size() / 2], benchmark::Counter::kAvgThreads);
  state.counters["p99_ns"] =
      benchmark::Counter(ns[ns.size() * 99 / 100], benchmark::Counter::kAvgThreads);
}

void BM_CacheHitComplete(benchmark::State& state) {
  glmproxy::ProxyClient& client = cached_client(state.range(0) != 0);
  const glmproxy::ChatRequest request = request_1kb();
  std::vector<double> mine;
  int n = 0;
  auto t0 = Clock::now();
  for (auto _ : state) {
    auto reply = client.complete(request);
    if (!reply || !reply->from_cache) {
      state.SkipWithError("not a cache hit");
      break;
    }
    benchmark::DoNotOptimize(reply->content.data());
    if (++n == 16) {
      const auto t1 = Clock::now();
      mine.push_back(static_cast<double>((t1 - t0).count()) / 16.0);
      n = 0;
      t0 = t1;
    }
  }
  // Timed in batches of 16 calls: one call is close to the clock's own cost.
  report(state, mine);
}
// Arg: metrics on (1) or off (0, METRICS_ENABLED=false): the difference is what recording a
// request's metrics costs.
BENCHMARK(BM_CacheHitComplete)->Arg(1)->Arg(0)->Threads(1)->Threads(2)->UseRealTime()->MinTime(1.0);

// The key alone: XXH3-128 over the canonical request (extra_json canonicalised).
void BM_CacheKey(benchmark::State& state) {
  const glmproxy::ChatRequest request = request_1kb();
  for (auto _ : state) {
    auto key = glmproxy::detail::chat_cache_key(request, "http://127.0.0.1/api/paas/v4", "glm-4.7",
                                                false, "");
    benchmark::DoNotOptimize(key);
  }
}
BENCHMARK(BM_CacheKey);

// The key without extra_json (no JSON parse): what most requests cost.
void BM_CacheKeyNoExtra(benchmark::State& state) {
  glmproxy::ChatRequest request = request_1kb();
  request.extra_json.clear();
  for (auto _ : state) {
    auto key = glmproxy::detail::chat_cache_key(request, "http://127.0.0.1/api/paas/v4", "glm-4.7",
                                                false, "");
    benchmark::DoNotOptimize(key);
  }
}
BENCHMARK(BM_CacheKeyNoExtra);

// What the transport adds per upstream attempt with METRICS_ENABLED (src/transport/transport.cpp,
// account() and admit()): four curl_easy_getinfo reads of a finished transfer, two byte
// counters and one acquire-wait histogram record. The same calls, on a handle that has just
// made a real request to the mock, so that curl's info is filled in.
void BM_UpstreamAccounting(benchmark::State& state) {
  static auto server = glmproxy::mock::MockUpstream::start();
  const std::string url = server->base_url() + "/api/paas/v4/chat/completions";
  const std::string body = R"({"model":"glm-4.7","messages":[{"role":"user","content":"hi"}]})";
  CURL* easy = curl_easy_init();
  std::string sink;
  curl_easy_setopt(easy, CURLOPT_URL, url.c_str());
  curl_easy_setopt(easy, CURLOPT_POSTFIELDS, body.c_str());
  curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION,
                   +[](char* d, size_t s, size_t n, void* u) -> size_t {
                     static_cast<std::string*>(u)->append(d, s * n);
                     return s * n;
                   });
  curl_easy_setopt(easy, CURLOPT_WRITEDATA, &sink);
  if (curl_easy_perform(easy) != CURLE_OK) state.SkipWithError("request to the mock failed");
  glmproxy::detail::LatencyHistogram acquire_wait;
  std::atomic<std::uint64_t> sent{0}, received{0};
  std::int64_t us = 0;
  for (auto _ : state) {
    long request_size = 0, header_size = 0;
    curl_off_t uploaded = 0, downloaded = 0;
    curl_easy_getinfo(easy, CURLINFO_REQUEST_SIZE, &request_size);
    curl_easy_getinfo(easy, CURLINFO_SIZE_UPLOAD_T, &uploaded);
    curl_easy_getinfo(easy, CURLINFO_HEADER_SIZE, &header_size);
    curl_easy_getinfo(easy, CURLINFO_SIZE_DOWNLOAD_T, &downloaded);
    sent.fetch_add(static_cast<std::uint64_t>(request_size), std::memory_order_relaxed);
    received.fetch_add(static_cast<std::uint64_t>(downloaded + header_size),
                       std::memory_order_relaxed);
    acquire_wait.record(std::chrono::microseconds(us++ & 1023));
    benchmark::DoNotOptimize(uploaded);
  }
  curl_easy_cleanup(easy);
}
BENCHMARK(BM_UpstreamAccounting);

}  // namespace

BENCHMARK_MAIN();
