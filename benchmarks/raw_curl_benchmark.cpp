// The baseline every glmproxy figure is compared with: raw libcurl, one easy handle reused
// sequentially, against the in-process mock upstream on loopback.
//
//   build/release/benchmarks/raw_curl_benchmark

#include <benchmark/benchmark.h>
#include <curl/curl.h>

#include <string>

#include "glmproxy/mock/mock_upstream.hpp"

namespace {

size_t discard(char*, size_t size, size_t n, void* user) {
  static_cast<std::string*>(user)->append(size * n, '\0');
  return size * n;
}

void BM_RawCurlEasyReuse(benchmark::State& state) {
  glmproxy::mock::MockOptions options;
  options.record_limit = 0;
  auto server = glmproxy::mock::MockUpstream::start(options);
  if (!server) {
    state.SkipWithError("mock upstream did not start");
    return;
  }
  const std::string url = server->base_url() + "/v1/chat/completions";
  const std::string body =
      R"({"model":"glm-4.7","messages":[{"role":"user","content":"Say hello."}]})";
  CURL* easy = curl_easy_init();
  curl_slist* headers = curl_slist_append(nullptr, "Content-Type: application/json");
  std::string sink;
  curl_easy_setopt(easy, CURLOPT_URL, url.c_str());
  curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(easy, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(easy, CURLOPT_POSTFIELDS, body.c_str());
  curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body.size()));
  curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, &discard);
  curl_easy_setopt(easy, CURLOPT_WRITEDATA, &sink);
  for (auto _ : state) {
    sink.clear();
    if (curl_easy_perform(easy) != CURLE_OK) {
      state.SkipWithError("request failed");
      break;
    }
    benchmark::DoNotOptimize(sink.data());
  }
  state.counters["connections"] = static_cast<double>(server->stats().connections_accepted);
  curl_slist_free_all(headers);
  curl_easy_cleanup(easy);
}
BENCHMARK(BM_RawCurlEasyReuse)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
