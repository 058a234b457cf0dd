// Streaming: SSE parse throughput on a recorded ~1 MB OpenAI-style stream (the parser alone, and
// parser + JSON decoding into StreamEvents), and end-to-end time to first token of
// ProxyClient::stream() against raw libcurl reading the same stream from the same mock.
//
//   build/release/benchmarks/stream_benchmark --benchmark_repetitions=5
//   (scripts/bench-stream.sh runs it and writes the figures into docs/performance.md)

#include <benchmark/benchmark.h>
#include <curl/curl.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <new>
#include <string>
#include <vector>

#include "glmproxy/glmproxy.hpp"
#include "glmproxy/mock/mock_upstream.hpp"
#include "protocol/chat_stream.hpp"
#include "protocol/sse.hpp"
#include "support/counting_new.hpp"

// operator new is counted while counting_new::counting is set on the calling thread, so the
// per-chunk path can report its allocations (it should make none).

namespace {

using Clock = std::chrono::steady_clock;

// A mock whose streamed reply is long enough for a ~1 MB event stream (about 6,000 content
// deltas), and a second with a short reply for time-to-first-token.
glmproxy::mock::MockUpstream& big_mock() {
  static auto server = [] {
    glmproxy::mock::MockOptions o;
    o.record_limit = 0;
    std::string text;
    const char* words[] = {"stream ",  "token ",      "parse ", "line\\n ",
                           "données ", "\"quoted\" ", "模型 ",  "buffer "};
    for (int i = 0; text.size() < 60'000; ++i) text += words[i % 8];
    o.reply_text = text;
    o.stream_chunks = 6'000;
    return glmproxy::mock::MockUpstream::start(o);
  }();
  return *server;
}

glmproxy::mock::MockUpstream& small_mock() {
  static auto server = [] {
    glmproxy::mock::MockOptions o;
    o.record_limit = 0;
    o.stream_chunks = 8;
    return glmproxy::mock::MockUpstream::start(o);
  }();
  return *server;
}

const char* const kStreamBody =
    R"({"model":"glm-4.7","stream":true,"stream_options":{"include_usage":true},)"
    R"("messages":[{"role":"user","content":"Say hello."}]})";

size_t collect(char* data, size_t size, size_t n, void* user) {
  static_cast<std::string*>(user)->append(data, size * n);
  return size * n;
}

// The recorded stream: what the big mock sends for one request, fetched once with libcurl.
const std::string& recorded_stream() {
  static const std::string body = [] {
    std::string out;
    const std::string url = big_mock().base_url() + "/api/paas/v4/chat/completions";
    CURL* easy = curl_easy_init();
    curl_slist* headers = curl_slist_append(nullptr, "Content-Type: application/json");
    curl_easy_setopt(easy, CURLOPT_URL, url.c_str());
    curl_easy_setopt(easy, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(easy, CURLOPT_POSTFIELDS, kStreamBody);
    curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, &collect);
    curl_easy_setopt(easy, CURLOPT_WRITEDATA, &out);
    curl_easy_perform(easy);
    curl_slist_free_all(headers);
    curl_easy_cleanup(easy);
    return out;
  }();
  return body;
}

struct CountingSink final : glmproxy::detail::SseSink {
  std::size_t events = 0, bytes = 0;
  bool on_sse_event(const glmproxy::detail::SseEvent& e) override {
    ++events;
    bytes += e.data.size();
    return true;
  }
};

// The SSE parser alone, fed in pieces of range(0) bytes (as curl's receive buffer would).
void BM_SseParse(benchmark::State& state) {
  const std::string& body = recorded_stream();
  const auto piece = static_cast<std::size_t>(state.range(0));
  glmproxy::detail::BufferPool pool;
  glmproxy::detail::SseParser parser({}, &pool);
  CountingSink sink;
  for (auto _ : state) {
    parser.reset();
    for (std::size_t i = 0; i < body.size(); i += piece) {
      parser.feed(std::string_view(body).substr(i, piece), sink);
    }
    benchmark::DoNotOptimize(sink.events);
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) *
                          static_cast<std::int64_t>(body.size()));
  state.counters["stream_bytes"] = static_cast<double>(body.size());
  state.counters["events_per_stream"] =
      static_cast<double>(sink.events) / static_cast<double>(state.iterations());
}
BENCHMARK(BM_SseParse)->Arg(4096)->Arg(32768)->MinTime(1.0);

// Parser + simdjson decoding of every chunk + the StreamEvent callback: the whole per-chunk path
// of ProxyClient::stream() on the I/O thread, without the network.
void BM_SseParseAndDecode(benchmark::State& state) {
  const std::string& body = recorded_stream();
  const auto piece = static_cast<std::size_t>(state.range(0));
  glmproxy::detail::BufferPool pool;
  std::size_t text = 0;
  glmproxy::detail::StreamCallback on_event = [&text](const glmproxy::StreamEvent& e) {
    text += e.text.size();
    return true;
  };
  std::uint64_t chunks = 0, allocations = 0;
  for (auto _ : state) {
    glmproxy::detail::ChatStream stream(glmproxy::Protocol::OpenAI, &on_event, {});
    stream.begin(pool, "text/event-stream");
    counting_new::allocations = 0;
    counting_new::counting = true;
    for (std::size_t i = 0; i < body.size(); i += piece) {
      stream.on_body(std::string_view(body).substr(i, piece));
      ++chunks;
    }
    counting_new::counting = false;
    allocations += counting_new::allocations;
    if (stream.on_end()) state.SkipWithError("the recorded stream did not decode");
    stream.release();
    benchmark::DoNotOptimize(text);
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) *
                          static_cast<std::int64_t>(body.size()));
  // Includes each stream's first chunks, when its pooled buffers are first taken.
  state.counters["allocs_per_chunk"] =
      static_cast<double>(allocations) / static_cast<double>(std::max<std::uint64_t>(chunks, 1));
  state.counters["allocs_per_stream"] =
      static_cast<double>(allocations) / static_cast<double>(state.iterations());
}
BENCHMARK(BM_SseParseAndDecode)->Arg(4096)->Arg(32768)->MinTime(1.0);

class Latencies {
 public:
  void add(Clock::duration d) { samples_.push_back(d.count()); }
  void report(benchmark::State& state, const char* name) {
    if (samples_.empty()) return;
    std::sort(samples_.begin(), samples_.end());
    auto at = [&](double q) {
      auto i = static_cast<std::size_t>(q * static_cast<double>(samples_.size() - 1));
      return static_cast<double>(samples_[i]) / 1000.0;  // ns -> us
    };
    state.counters[std::string(name) + "_p50_us"] = at(0.50);
    state.counters[std::string(name) + "_p99_us"] = at(0.99);
  }

 private:
  std::vector<Clock::rep> samples_;
};

// Raw libcurl, one easy handle reused: the first token is the first received piece holding a
// non-empty "content" delta.
struct RawStream {
  std::string data;
  std::size_t scanned = 0;
  Clock::time_point start, first_token;
  bool seen = false;
};

size_t raw_stream_write(char* data, size_t size, size_t n, void* user) {
  auto* s = static_cast<RawStream*>(user);
  s->data.append(data, size * n);
  if (!s->seen) {
    constexpr std::string_view kKey = "\"content\":\"";
    for (auto pos = s->data.find(kKey, s->scanned); pos != std::string::npos;
         pos = s->data.find(kKey, pos + 1)) {
      if (pos + kKey.size() < s->data.size() && s->data[pos + kKey.size()] != '"') {
        s->seen = true;
        s->first_token = Clock::now();
        break;
      }
    }
    s->scanned = s->data.size() > kKey.size() ? s->data.size() - kKey.size() : 0;
  }
  return size * n;
}

void BM_TtftRawCurl(benchmark::State& state) {
  const std::string url = small_mock().base_url() + "/api/paas/v4/chat/completions";
  CURL* easy = curl_easy_init();
  curl_slist* headers = curl_slist_append(nullptr, "Content-Type: application/json");
  headers = curl_slist_append(headers, "Accept: text/event-stream");
  RawStream s;
  curl_easy_setopt(easy, CURLOPT_URL, url.c_str());
  curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(easy, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(easy, CURLOPT_POSTFIELDS, kStreamBody);
  curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, &raw_stream_write);
  curl_easy_setopt(easy, CURLOPT_WRITEDATA, &s);
  Latencies ttft, total;
  for (auto _ : state) {
    s.data.clear();
    s.scanned = 0;
    s.seen = false;
    s.start = Clock::now();
    if (curl_easy_perform(easy) != CURLE_OK || !s.seen) {
      state.SkipWithError("stream failed");
      break;
    }
    ttft.add(s.first_token - s.start);
    total.add(Clock::now() - s.start);
  }
  ttft.report(state, "ttft");
  total.report(state, "total");
  curl_slist_free_all(headers);
  curl_easy_cleanup(easy);
}
BENCHMARK(BM_TtftRawCurl)->UseRealTime()->MinTime(2.0);

void BM_TtftProxyStream(benchmark::State& state) {
  glmproxy::Config config;
  config.upstream.api_key = "sk-bench";
  config.upstream.openai_base_url = small_mock().base_url() + "/api/paas/v4";
  auto client = glmproxy::ProxyClient::create(config);
  if (!client) {
    state.SkipWithError("client did not start");
    return;
  }
  glmproxy::ChatRequest request;
  request.messages = {{"user", "Say hello."}};
  Latencies ttft, total;
  Clock::time_point first;
  bool seen = false;
  const std::function<bool(const glmproxy::StreamEvent&)> on_event =
      [&](const glmproxy::StreamEvent& e) {
        if (!seen && e.type == glmproxy::StreamEvent::Type::Text) {
          first = Clock::now();
          seen = true;
        }
        return true;
      };
  for (auto _ : state) {
    seen = false;
    const auto start = Clock::now();
    auto reply = client->stream(request, on_event);
    if (!reply || !seen) {
      state.SkipWithError("stream failed");
      break;
    }
    ttft.add(first - start);
    total.add(Clock::now() - start);
  }
  ttft.report(state, "ttft");
  total.report(state, "total");
}
BENCHMARK(BM_TtftProxyStream)->UseRealTime()->MinTime(2.0);

}  // namespace

BENCHMARK_MAIN();
