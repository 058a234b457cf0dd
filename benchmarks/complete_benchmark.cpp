// Sequential request latency on loopback: raw libcurl (one easy handle reused) against
// ProxyClient::complete(), both against the same in-process mock upstream in the same run.
// The difference is what glmproxy adds per request (request writing, the hand-over to the I/O
// thread, response parsing).
//
//   build/release/benchmarks/complete_benchmark --benchmark_repetitions=5
//   GLMPROXY_BENCH_UPSTREAM=http://127.0.0.1:PORT ... (an external mock; see
//   scripts/bench-complete.sh, which pins it and this program to different cores and writes
//   docs/performance.md)

#include <benchmark/benchmark.h>
#include <curl/curl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <future>
#include <string>
#include <thread>
#include <vector>

#include "glmproxy/glmproxy.hpp"
#include "glmproxy/mock/mock_upstream.hpp"

namespace {

const char* const kBody =
    R"({"model":"glm-4.7","messages":[{"role":"user","content":"Say hello."}]})";

// The upstream: GLMPROXY_BENCH_UPSTREAM (e.g. a glmproxy-mock-upstream in another process,
// pinned to another core) or, when unset, the mock started in this process.
const std::string& upstream() {
  static const std::string url = [] {
    if (const char* external = std::getenv("GLMPROXY_BENCH_UPSTREAM")) return std::string(external);
    glmproxy::mock::MockOptions options;
    options.record_limit = 0;
    static auto server = glmproxy::mock::MockUpstream::start(options);
    return server ? server->base_url() : std::string("http://127.0.0.1:1");
  }();
  return url;
}

// Per-request latencies, for p50/p99 counters next to Google Benchmark's mean.
class Latencies {
 public:
  void add(std::chrono::steady_clock::duration d) { samples_.push_back(d.count()); }
  void report(benchmark::State& state) {
    if (samples_.empty()) return;
    std::sort(samples_.begin(), samples_.end());
    auto at = [&](double q) {
      auto i = static_cast<std::size_t>(q * static_cast<double>(samples_.size() - 1));
      return static_cast<double>(samples_[i]) / 1000.0;  // ns -> us
    };
    state.counters["p50_us"] = at(0.50);
    state.counters["p99_us"] = at(0.99);
  }

 private:
  std::vector<std::chrono::steady_clock::rep> samples_;
};

size_t collect(char* data, size_t size, size_t n, void* user) {
  static_cast<std::string*>(user)->append(data, size * n);
  return size * n;
}

void BM_RawCurlEasyReuse(benchmark::State& state) {
  const std::string url = upstream() + "/api/paas/v4/chat/completions";
  CURL* easy = curl_easy_init();
  curl_slist* headers = curl_slist_append(nullptr, "Content-Type: application/json");
  headers = curl_slist_append(headers, "Authorization: Bearer sk-bench");
  std::string sink;
  curl_easy_setopt(easy, CURLOPT_URL, url.c_str());
  curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(easy, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(easy, CURLOPT_POSTFIELDS, kBody);
  curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, &collect);
  curl_easy_setopt(easy, CURLOPT_WRITEDATA, &sink);
  Latencies latencies;
  for (auto _ : state) {
    const auto start = std::chrono::steady_clock::now();
    sink.clear();
    if (curl_easy_perform(easy) != CURLE_OK) {
      state.SkipWithError("request failed");
      break;
    }
    benchmark::DoNotOptimize(sink.data());
    latencies.add(std::chrono::steady_clock::now() - start);
  }
  latencies.report(state);
  curl_slist_free_all(headers);
  curl_easy_cleanup(easy);
}
BENCHMARK(BM_RawCurlEasyReuse)->UseRealTime()->MinTime(2.0);

void BM_ProxyClientComplete(benchmark::State& state) {
  glmproxy::Config config;
  config.upstream.api_key = "sk-bench";
  config.upstream.openai_base_url = upstream() + "/api/paas/v4";
  auto client = glmproxy::ProxyClient::create(config);
  if (!client) {
    state.SkipWithError("client did not start");
    return;
  }
  glmproxy::ChatRequest request;
  request.messages = {{"user", "Say hello."}};
  Latencies latencies;
  for (auto _ : state) {
    const auto start = std::chrono::steady_clock::now();
    auto reply = client->complete(request);
    if (!reply) {
      state.SkipWithError("request failed");
      break;
    }
    benchmark::DoNotOptimize(reply->content.data());
    latencies.add(std::chrono::steady_clock::now() - start);
  }
  latencies.report(state);
}
BENCHMARK(BM_ProxyClientComplete)->UseRealTime()->MinTime(2.0);

// The architecture's fixed cost, without HTTP: a caller hands work to a thread blocked in
// poll() (woken through a socketpair, as curl_multi_wakeup does) and waits on a promise for the
// answer. complete() pays this once per request on top of raw libcurl's work.
void BM_ThreadHandoffRoundTrip(benchmark::State& state) {
  int fds[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, fds) != 0) {
    state.SkipWithError("socketpair failed");
    return;
  }
  std::atomic<std::promise<int>*> slot{nullptr};
  std::atomic<bool> stop{false};
  std::thread io([&] {
    while (!stop.load()) {
      pollfd p{fds[1], POLLIN, 0};
      ::poll(&p, 1, 1000);
      char buf[64];
      while (::recv(fds[1], buf, sizeof buf, 0) > 0) {
      }
      if (auto* promise = slot.exchange(nullptr)) promise->set_value(1);
    }
  });
  Latencies latencies;
  for (auto _ : state) {
    const auto start = std::chrono::steady_clock::now();
    auto promise = std::make_shared<std::promise<int>>();
    auto future = promise->get_future();
    slot.store(promise.get());
    ::send(fds[0], "x", 1, MSG_NOSIGNAL);
    benchmark::DoNotOptimize(future.get());
    latencies.add(std::chrono::steady_clock::now() - start);
  }
  stop.store(true);
  ::send(fds[0], "x", 1, MSG_NOSIGNAL);
  io.join();
  ::close(fds[0]);
  ::close(fds[1]);
  latencies.report(state);
}
BENCHMARK(BM_ThreadHandoffRoundTrip)->UseRealTime()->MinTime(1.0);

}  // namespace

BENCHMARK_MAIN();
