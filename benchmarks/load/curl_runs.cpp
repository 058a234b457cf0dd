#include "load/curl_runs.hpp"

#include <curl/curl.h>

#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

namespace glmproxy::bench {

namespace {

// One request slot: an easy handle reused request after request, and its per-request state.
struct Xfer {
  CURL* easy = nullptr;
  std::string body, rx;
  bool stream = false, seen_token = false;
  std::size_t scanned = 0;
  Clock::time_point start, first_token;
};

// The first token of a raw stream: the first received piece holding a non-empty "content"
// delta (the role-only first chunk has none).
size_t on_body(char* data, size_t size, size_t n, void* user) {
  auto* x = static_cast<Xfer*>(user);
  x->rx.append(data, size * n);
  if (x->stream && !x->seen_token) {
    constexpr std::string_view kKey = "\"content\":\"";
    for (auto pos = x->rx.find(kKey, x->scanned); pos != std::string::npos;
         pos = x->rx.find(kKey, pos + 1)) {
      if (pos + kKey.size() < x->rx.size() && x->rx[pos + kKey.size()] != '"') {
        x->seen_token = true;
        x->first_token = Clock::now();
        break;
      }
    }
    x->scanned = x->rx.size() > kKey.size() ? x->rx.size() - kKey.size() : 0;
  }
  return size * n;
}

// Handles and headers of one baseline client, and how it writes each workload's requests.
class CurlClient {
 public:
  CurlClient(const Context& ctx, Workload workload) : ctx_(ctx), workload_(workload) {
    stream_ = workload == Workload::Stream;
    url_ = ctx.base_url + (workload == Workload::Embed ? "/embeddings" : "/chat/completions");
    headers_ = curl_slist_append(nullptr, "Content-Type: application/json");
    headers_ = curl_slist_append(headers_, "Authorization: Bearer sk-bench");
    headers_ = curl_slist_append(
        headers_, stream_ ? "Accept: text/event-stream" : "Accept: application/json");
  }
  ~CurlClient() {
    for (auto& x : xfers_) curl_easy_cleanup(x->easy);
    curl_slist_free_all(headers_);
  }
  CurlClient(const CurlClient&) = delete;
  CurlClient& operator=(const CurlClient&) = delete;

  Xfer& add_xfer() {
    auto x = std::make_unique<Xfer>();
    x->easy = curl_easy_init();
    x->stream = stream_;
    curl_easy_setopt(x->easy, CURLOPT_URL, url_.c_str());
    curl_easy_setopt(x->easy, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(x->easy, CURLOPT_HTTPHEADER, headers_);
    curl_easy_setopt(x->easy, CURLOPT_WRITEFUNCTION, &on_body);
    curl_easy_setopt(x->easy, CURLOPT_WRITEDATA, x.get());
    curl_easy_setopt(x->easy, CURLOPT_PRIVATE, x.get());
    curl_easy_setopt(x->easy, CURLOPT_TIMEOUT_MS, ctx_.request_timeout_ms);
    xfers_.push_back(std::move(x));
    return *xfers_.back();
  }

  // The next request's body; `burst` names the burst for Coalesce (0: a new one each call).
  void prepare(Xfer& x, std::uint64_t burst = 0) {
    switch (workload_) {
      case Workload::Chat:
        x.body = chat_body(chat_prompt(next_request_id()), false);
        break;
      case Workload::Stream:
        x.body = chat_body(chat_prompt(next_request_id()), true);
        break;
      case Workload::Cache:
        x.body = chat_body(kCachePrompt, false);
        break;
      case Workload::Coalesce:
        x.body = chat_body(burst_prompt(burst != 0 ? burst : next_request_id()), false);
        break;
      case Workload::Embed:
        x.body = embed_body(embed_input(next_request_id()));
        break;
    }
    curl_easy_setopt(x.easy, CURLOPT_POSTFIELDS, x.body.data());
    curl_easy_setopt(x.easy, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(x.body.size()));
    x.rx.clear();
    x.scanned = 0;
    x.seen_token = false;
  }

  // Records a finished request of `x` (latency from x.start).
  void finish(Xfer& x, CURLcode code, RunResult& r) {
    const auto end = Clock::now();
    long status = 0;
    curl_easy_getinfo(x.easy, CURLINFO_RESPONSE_CODE, &status);
    ++r.requests;
    if (code != CURLE_OK) {
      r.fail(std::string("curl: ") + curl_easy_strerror(code));
    } else if (status != 200) {
      r.fail("HTTP " + std::to_string(status) + ": " + x.rx.substr(0, 200));
    } else if (x.stream && !x.seen_token) {
      r.fail("stream without a content delta");
    } else if (x.stream) {
      r.ttft.record(x.first_token - x.start);
    }
    r.latency.record(end - x.start);
  }

  bool stream() const noexcept { return stream_; }

 private:
  const Context& ctx_;
  Workload workload_;
  bool stream_ = false;
  std::string url_;
  curl_slist* headers_ = nullptr;
  std::vector<std::unique_ptr<Xfer>> xfers_;
};

RunResult base_result(Workload workload, const char* mode, const char* client, int concurrency) {
  RunResult r;
  r.workload = std::string(to_string(workload));
  r.mode = mode;
  r.client = client;
  r.concurrency = concurrency;
  r.has_ttft = workload == Workload::Stream;
  return r;
}

// Keeps `n` requests in flight (or sends bursts of `n`) until `limits`; returns when none is
// left in flight, or the drain time after the deadline has passed (the rest count as errors).
void multi_phase(const Context& ctx, CurlClient& client, CURLM* multi, std::vector<Xfer*>& xfers,
                 bool bursts, const Limits& limits, RunResult& r, Progress* progress) {
  const auto deadline = after(Clock::now(), limits.seconds);
  const auto drain_deadline = after(deadline, ctx.drain_seconds);
  std::uint64_t issued = 0;
  std::size_t in_flight = 0;
  auto can_issue = [&](Clock::time_point now) {
    return (limits.requests == 0 || issued < limits.requests) && now < deadline;
  };
  auto send = [&](Xfer& x, std::uint64_t burst, Clock::time_point now) {
    client.prepare(x, burst);
    x.start = now;
    curl_multi_add_handle(multi, x.easy);
    ++issued;
    ++in_flight;
  };
  auto send_all = [&]() {
    const auto now = Clock::now();
    const std::uint64_t burst = bursts ? next_request_id() : 0;
    for (Xfer* x : xfers) {
      if (!can_issue(now)) break;
      send(*x, burst, now);
    }
  };
  send_all();
  while (in_flight > 0) {
    int running = 0;
    curl_multi_perform(multi, &running);
    int left = 0;
    while (CURLMsg* msg = curl_multi_info_read(multi, &left)) {
      if (msg->msg != CURLMSG_DONE) continue;
      Xfer* x = nullptr;
      curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &x);
      const CURLcode code = msg->data.result;
      curl_multi_remove_handle(multi, x->easy);
      --in_flight;
      client.finish(*x, code, r);
      if (!bursts && can_issue(Clock::now())) send(*x, 0, Clock::now());
    }
    if (bursts && in_flight == 0) send_all();
    if (progress != nullptr) progress->tick(r.requests);
    if (in_flight == 0) break;
    if (Clock::now() >= drain_deadline) {
      for (Xfer* x : xfers) curl_multi_remove_handle(multi, x->easy);  // no-op if not added
      r.errors += in_flight;
      if (r.first_error.empty()) r.first_error = "requests still in flight after the drain time";
      break;
    }
    curl_multi_poll(multi, nullptr, 0, 100, nullptr);
  }
}

}  // namespace

RunResult run_curl_easy(const Context& ctx, Workload workload) {
  RunResult r = base_result(workload, "closed", "curl-easy", 1);
  r.api = "curl_easy_perform(), one handle reused";
  Phase phase(ctx);
  CurlClient client(ctx, workload);
  Xfer& x = client.add_xfer();
  auto loop = [&](const Limits& limits, RunResult& into, Progress* progress) {
    const auto deadline = after(Clock::now(), limits.seconds);
    for (std::uint64_t n = 0; limits.requests == 0 || n < limits.requests; ++n) {
      client.prepare(x);
      x.start = Clock::now();
      if (x.start >= deadline) break;
      client.finish(x, curl_easy_perform(x.easy), into);
      if (progress != nullptr) progress->tick(into.requests);
    }
  };
  RunResult warm;
  loop(ctx.warmup, warm, nullptr);
  Progress progress(r.workload + " curl-easy");
  phase.begin();
  loop(ctx.limits, r, &progress);
  phase.end(r);
  return r;
}

RunResult run_curl_multi(const Context& ctx, Workload workload, int concurrency) {
  const bool bursts = workload == Workload::Coalesce;
  RunResult r = base_result(workload, "closed", "curl-multi", concurrency);
  r.api = bursts ? "curl_multi, bursts of " + std::to_string(concurrency)
                 : "curl_multi, " + std::to_string(concurrency) + " handles";
  Phase phase(ctx);
  CurlClient client(ctx, workload);
  CURLM* multi = curl_multi_init();
  curl_multi_setopt(multi, CURLMOPT_MAX_HOST_CONNECTIONS, static_cast<long>(concurrency));
  curl_multi_setopt(multi, CURLMOPT_MAXCONNECTS, static_cast<long>(concurrency));
  std::vector<Xfer*> xfers;
  for (int i = 0; i < concurrency; ++i) xfers.push_back(&client.add_xfer());
  RunResult warm;
  multi_phase(ctx, client, multi, xfers, bursts, ctx.warmup, warm, nullptr);
  Progress progress(r.workload + " curl-multi c=" + std::to_string(concurrency));
  phase.begin();
  multi_phase(ctx, client, multi, xfers, bursts, ctx.limits, r, &progress);
  phase.end(r);
  for (Xfer* x : xfers) curl_multi_remove_handle(multi, x->easy);
  curl_multi_cleanup(multi);  // before the easy handles (CurlClient) go
  return r;
}

RunResult run_curl_open(const Context& ctx, Workload workload, double rate) {
  RunResult r = base_result(workload, "open", "curl-multi", 0);
  r.rate = rate;
  r.api = "curl_multi fed by a pacing thread";
  Phase phase(ctx);
  CurlClient client(ctx, workload);
  CURLM* multi = curl_multi_init();
  // The same connection limits as the glmproxy client of the open-loop step (POOL_MAX_CONNECTIONS
  // = open_workers): without them curl keeps only a few idle connections and churns.
  const auto max_conns = static_cast<long>(ctx.open_workers);
  curl_multi_setopt(multi, CURLMOPT_MAX_HOST_CONNECTIONS, max_conns);
  curl_multi_setopt(multi, CURLMOPT_MAXCONNECTS, max_conns);
  // A short closed warm-up opens connections, as the other clients' warm-ups do.
  std::vector<Xfer*> all;
  for (int i = 0; i < 4; ++i) all.push_back(&client.add_xfer());
  RunResult warm;
  multi_phase(ctx, client, multi, all, false, ctx.warmup, warm, nullptr);
  std::vector<Xfer*> free_xfers = all;
  std::mutex mu;
  std::deque<Clock::time_point> due;  // intended send times not yet picked up
  bool pacing_done = false;
  phase.begin();
  std::thread pacer([&] {
    pace(rate, ctx.limits, [&](Clock::time_point intended) {
      {
        std::lock_guard lock(mu);
        due.push_back(intended);
      }
      curl_multi_wakeup(multi);
    });
    std::lock_guard lock(mu);
    pacing_done = true;
    curl_multi_wakeup(multi);
  });
  Progress progress(r.workload + " curl-multi open");
  std::size_t in_flight = 0;
  std::optional<Clock::time_point> drain_deadline;
  while (true) {
    std::deque<Clock::time_point> now_due;
    bool done_pacing = false;
    {
      std::lock_guard lock(mu);
      now_due.swap(due);
      done_pacing = pacing_done;
    }
    for (const auto intended : now_due) {
      Xfer* x = nullptr;
      if (free_xfers.empty()) {
        x = &client.add_xfer();
        all.push_back(x);
      } else {
        x = free_xfers.back();
        free_xfers.pop_back();
      }
      client.prepare(*x);
      x->start = intended;
      curl_multi_add_handle(multi, x->easy);
      ++in_flight;
    }
    int running = 0;
    curl_multi_perform(multi, &running);
    int left = 0;
    while (CURLMsg* msg = curl_multi_info_read(multi, &left)) {
      if (msg->msg != CURLMSG_DONE) continue;
      Xfer* x = nullptr;
      curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &x);
      const CURLcode code = msg->data.result;
      curl_multi_remove_handle(multi, x->easy);
      --in_flight;
      client.finish(*x, code, r);
      free_xfers.push_back(x);
    }
    progress.tick(r.requests);
    if (done_pacing) {
      if (in_flight == 0) break;
      if (!drain_deadline) drain_deadline = after(Clock::now(), ctx.drain_seconds);
      if (Clock::now() >= *drain_deadline) {
        for (Xfer* x : all) curl_multi_remove_handle(multi, x->easy);
        r.errors += in_flight;
        if (r.first_error.empty()) r.first_error = "requests still in flight after the drain time";
        break;
      }
    }
    curl_multi_poll(multi, nullptr, 0, 100, nullptr);
  }
  pacer.join();
  phase.end(r);
  for (Xfer* x : all) curl_multi_remove_handle(multi, x->easy);
  curl_multi_cleanup(multi);
  return r;
}

}  // namespace glmproxy::bench
