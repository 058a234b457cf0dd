#include "load/client_runs.hpp"

#include <condition_variable>
#include <memory>
#include <mutex>

#include "load/client_calls.hpp"

namespace glmproxy::bench {

namespace {

using namespace std::chrono_literals;

// complete_async() in a closed loop: `n` requests out, each answer's callback (on the
// client's callback pool) sends the next. Shared with the callbacks, so it outlives any late one.
class AsyncLoop : public std::enable_shared_from_this<AsyncLoop> {
 public:
  AsyncLoop(ProxyClient& client, const Context& ctx) : client_(client), ctx_(ctx) {}

  Clock::time_point run(int n, const Limits& limits, Phase* phase, Progress* progress,
                        RunResult& r) {
    std::uint64_t first = 0;
    if (phase != nullptr) phase->begin();
    {
      std::lock_guard lock(mu_);
      deadline_ = after(Clock::now(), limits.seconds);
      limit_ = limits.requests;
      first = static_cast<std::uint64_t>(n);
      if (limit_ != 0) first = std::min(first, limit_);
      issued_ = first;
      last_ = Clock::now();
    }
    for (std::uint64_t i = 0; i < first; ++i) issue();
    std::unique_lock lock(mu_);
    const auto give_up = after(deadline_, ctx_.drain_seconds);
    while (completed_ != issued_) {
      cv_.wait_for(lock, 100ms);
      if (progress != nullptr) progress->tick(completed_);
      if (Clock::now() >= give_up) {
        stop_ = true;
        slot_.errors += issued_ - completed_;
        if (slot_.first_error.empty())
          slot_.first_error = "requests still out after the drain time";
        last_ = Clock::now();
        break;
      }
    }
    slot_.done.store(completed_);
    slot_.merge_into(r);
    stop_ = true;
    return last_;
  }

 private:
  void issue() {
    ChatRequest request = chat_request(chat_prompt(next_request_id()));
    const auto start = Clock::now();
    client_.complete_async(std::move(request),
                           [self = shared_from_this(), start](Result<ChatResponse> reply) {
                             self->done(start, reply);
                           });
  }

  void done(Clock::time_point start, const Result<ChatResponse>& reply) {
    const auto end = Clock::now();
    bool again = false;
    {
      std::lock_guard lock(mu_);
      if (stop_) return;  // a late answer after the step gave up on it
      slot_.latency.record(end - start);
      ++completed_;
      if (!reply) slot_.fail(reply.error());
      again = end < deadline_ && (limit_ == 0 || issued_ < limit_);
      if (again) {
        ++issued_;
      } else if (completed_ == issued_) {
        last_ = end;
        cv_.notify_all();
      }
    }
    if (again) issue();
  }

  ProxyClient& client_;
  const Context& ctx_;
  std::mutex mu_;
  std::condition_variable cv_;
  Slot slot_;
  Clock::time_point deadline_{}, last_{};
  std::uint64_t limit_ = 0, issued_ = 0, completed_ = 0;
  bool stop_ = false;
};

// complete_async() fed by one thread, the way an application with its own request loop uses
// it: this thread keeps `n` requests out and, when all are out, waits until a callback frees a
// place; the callbacks only record and release. Shared with the callbacks, so it outlives any
// late one.
struct Feeder {
  std::mutex mu;
  std::condition_variable freed;  // a place came free, or the last answer arrived
  Slot slot;
  std::uint64_t in_flight = 0;
  bool abandoned = false;
  Clock::time_point last{};
};

Clock::time_point run_feeder(ProxyClient& client, const Context& ctx, int n, const Limits& limits,
                             Phase* phase, Progress* progress, RunResult& r) {
  auto state = std::make_shared<Feeder>();
  const auto places = static_cast<std::uint64_t>(n);
  if (phase != nullptr) phase->begin();
  const auto deadline = after(Clock::now(), limits.seconds);
  state->last = Clock::now();
  std::uint64_t issued = 0;
  while (limits.requests == 0 || issued < limits.requests) {
    {
      std::unique_lock lock(state->mu);
      if (!state->freed.wait_until(lock, deadline, [&] { return state->in_flight < places; })) {
        break;  // the deadline passed with every place taken
      }
      ++state->in_flight;
    }
    if (Clock::now() >= deadline) {
      std::lock_guard lock(state->mu);
      --state->in_flight;
      break;
    }
    ChatRequest request = chat_request(chat_prompt(next_request_id()));
    const auto start = Clock::now();
    client.complete_async(std::move(request), [state, start](Result<ChatResponse> reply) {
      const auto end = Clock::now();
      {
        std::lock_guard lock(state->mu);
        if (state->abandoned) return;  // a late answer after the step gave up on it
        state->slot.latency.record(end - start);
        if (!reply) state->slot.fail(reply.error());
        state->slot.done.fetch_add(1, std::memory_order_relaxed);
        --state->in_flight;
        state->last = end;
      }
      state->freed.notify_one();
    });
    ++issued;
    if (progress != nullptr && issued % 256 == 0) progress->tick(state->slot.done.load());
  }
  std::unique_lock lock(state->mu);
  const auto give_up = after(std::max(deadline, Clock::now()), ctx.drain_seconds);
  while (state->in_flight != 0) {
    state->freed.wait_for(lock, 100ms);
    if (progress != nullptr) progress->tick(state->slot.done.load());
    if (state->in_flight != 0 && Clock::now() >= give_up) {
      state->slot.errors += state->in_flight;
      if (state->slot.first_error.empty())
        state->slot.first_error = "requests still out after the drain time";
      state->last = Clock::now();
      break;
    }
  }
  state->abandoned = true;
  state->slot.merge_into(r);
  return state->last;
}

// Bursts of `n` identical complete_async() calls (coalescing); each burst is waited for.
struct Burst {
  std::mutex mu;
  std::condition_variable cv;
  Slot slot;
  int pending = 0;
  bool abandoned = false;
};

Clock::time_point run_bursts(ProxyClient& client, const Context& ctx, int n, const Limits& limits,
                             Phase* phase, Progress* progress, RunResult& r) {
  auto state = std::make_shared<Burst>();
  if (phase != nullptr) phase->begin();
  const auto deadline = after(Clock::now(), limits.seconds);
  std::uint64_t sent = 0;
  while (Clock::now() < deadline && (limits.requests == 0 || sent < limits.requests)) {
    const ChatRequest request = chat_request(burst_prompt(next_request_id()));
    {
      std::lock_guard lock(state->mu);
      state->pending = n;
    }
    const auto start = Clock::now();
    for (int i = 0; i < n; ++i) {
      client.complete_async(request, [state, start](Result<ChatResponse> reply) {
        const auto end = Clock::now();
        std::lock_guard lock(state->mu);
        if (state->abandoned) return;
        state->slot.latency.record(end - start);
        state->slot.done.store(state->slot.done.load() + 1);
        if (!reply) state->slot.fail(reply.error());
        if (--state->pending == 0) state->cv.notify_all();
      });
    }
    sent += static_cast<std::uint64_t>(n);
    std::unique_lock lock(state->mu);
    const auto give_up =
        after(Clock::now(), static_cast<double>(ctx.request_timeout_ms) / 1000.0 + 5);
    if (!state->cv.wait_until(lock, give_up, [&] { return state->pending == 0; })) {
      state->abandoned = true;
      state->slot.errors += static_cast<std::uint64_t>(state->pending);
      state->slot.first_error = "a burst was not answered in time";
      break;
    }
    if (progress != nullptr) progress->tick(state->slot.done.load());
  }
  const auto end = Clock::now();
  std::lock_guard lock(state->mu);
  state->abandoned = true;
  state->slot.merge_into(r);
  return end;
}

std::string api_name(Workload workload, Driver driver, int concurrency) {
  const std::string threads =
      concurrency == 1 ? std::string() : ", " + std::to_string(concurrency) + " threads";
  switch (workload) {
    case Workload::Chat:
      if (driver == Driver::Async) return "complete_async(), next sent from the callback";
      if (driver == Driver::Feeder) return "complete_async(), fed by one thread";
      return "complete()" + threads;
    case Workload::Stream:
      return "stream()" + threads;
    case Workload::Cache:
      return "complete(), cache hits" + threads;
    case Workload::Coalesce:
      return "complete_async(), bursts of " + std::to_string(concurrency) + " identical";
    case Workload::Embed:
      return "embed(), BATCHING_ENABLED" + threads;
  }
  return {};
}

}  // namespace

Config client_config(const Context& ctx, Workload workload, int connections) {
  Config config;
  config.upstream.openai_base_url = ctx.base_url;
  config.upstream.api_key = "sk-bench";
  config.pool.max_connections = std::max(connections, config.pool.max_connections);
  config.timeouts.total = Milliseconds(ctx.request_timeout_ms);
  config.timeouts.first_byte = Milliseconds(ctx.request_timeout_ms);
  config.cache.enabled = workload == Workload::Cache;
  config.batch.enabled = workload == Workload::Embed;
  return config;
}

RunResult run_client_closed(const Context& ctx, Workload workload, int concurrency, Driver driver) {
  if (workload != Workload::Chat) driver = Driver::Blocking;
  RunResult r = new_result(workload, "closed", concurrency);
  r.api = api_name(workload, driver, concurrency);
  r.driver = workload == Workload::Coalesce ? "bursts"
             : driver == Driver::Async      ? "callback"
             : driver == Driver::Feeder     ? "feeder"
                                            : "threads";
  Phase phase(ctx);
  auto client = ProxyClient::create(client_config(ctx, workload, concurrency));
  if (!client) {
    r.fail(client.error().describe());
    return r;
  }
  const ChatRequest fixed = chat_request(std::string(kCachePrompt));
  if (workload == Workload::Cache) {
    if (auto warm = client->complete(fixed); !warm) {
      r.fail("warming the cache entry: " + warm.error().describe());
      return r;
    }
  }
  const std::string label = r.workload + " glmproxy c=" + std::to_string(concurrency);
  Progress progress(label);
  MetricsDelta metrics;
  Clock::time_point end{};
  std::uint64_t not_from_cache = 0;
  auto call = [&](Slot& s) { blocking_call(*client, workload, s, fixed); };
  if (workload == Workload::Coalesce) {
    RunResult warm;
    run_bursts(*client, ctx, concurrency, ctx.warmup, nullptr, nullptr, warm);
    metrics.begin(*client);
    end = run_bursts(*client, ctx, concurrency, ctx.limits, &phase, &progress, r);
  } else if (driver == Driver::Async) {
    RunResult warm;
    std::make_shared<AsyncLoop>(*client, ctx)->run(concurrency, ctx.warmup, nullptr, nullptr, warm);
    metrics.begin(*client);
    end = std::make_shared<AsyncLoop>(*client, ctx)
              ->run(concurrency, ctx.limits, &phase, &progress, r);
  } else if (driver == Driver::Feeder) {
    RunResult warm;
    run_feeder(*client, ctx, concurrency, ctx.warmup, nullptr, nullptr, warm);
    metrics.begin(*client);
    end = run_feeder(*client, ctx, concurrency, ctx.limits, &phase, &progress, r);
  } else {
    RunResult warm;
    run_threads(concurrency, ctx.warmup, nullptr, nullptr, warm, nullptr, call);
    metrics.begin(*client);
    end = run_threads(concurrency, ctx.limits, &phase, &progress, r, &not_from_cache, call);
  }
  phase.end(r, end);
  metrics.end(*client, workload, r);
  if (workload == Workload::Cache) {
    r.extra.emplace_back("answers_not_from_cache", static_cast<double>(not_from_cache));
  }
  return r;
}

}  // namespace glmproxy::bench
