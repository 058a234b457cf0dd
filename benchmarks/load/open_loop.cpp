// The glmproxy side of open-loop steps (run_client_open, declared in client_runs.hpp).

#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "load/client_calls.hpp"
#include "load/client_runs.hpp"

namespace glmproxy::bench {

namespace {

using namespace std::chrono_literals;

// Open loop through complete_async(): the pacing thread (this one) sends at the intended times.
struct OpenAsync {
  std::mutex mu;
  std::condition_variable cv;
  Slot slot;
  std::uint64_t issued = 0, completed = 0;
  bool abandoned = false;
};

Clock::time_point run_open_async(ProxyClient& client, const Context& ctx, Workload workload,
                                 double rate, Phase& phase, RunResult& r) {
  auto state = std::make_shared<OpenAsync>();
  const ChatRequest fixed = chat_request(std::string(kCachePrompt));
  phase.begin();
  pace(rate, ctx.limits, [&](Clock::time_point intended) {
    ChatRequest request =
        workload == Workload::Cache ? fixed : chat_request(chat_prompt(next_request_id()));
    {
      std::lock_guard lock(state->mu);
      ++state->issued;
    }
    client.complete_async(std::move(request), [state, intended](Result<ChatResponse> reply) {
      const auto end = Clock::now();
      std::lock_guard lock(state->mu);
      if (state->abandoned) return;
      state->slot.latency.record(end - intended);
      ++state->completed;
      if (!reply) state->slot.fail(reply.error());
      if (state->completed == state->issued) state->cv.notify_all();
    });
  });
  Progress progress(r.workload + " glmproxy open");
  std::unique_lock lock(state->mu);
  const auto give_up = after(Clock::now(), ctx.drain_seconds);
  while (state->completed != state->issued) {
    state->cv.wait_for(lock, 100ms);
    progress.tick(state->completed);
    if (Clock::now() >= give_up) {
      state->slot.errors += state->issued - state->completed;
      state->slot.first_error = "requests still out after the drain time";
      break;
    }
  }
  state->abandoned = true;
  state->slot.done.store(state->completed);
  state->slot.merge_into(r);
  return Clock::now();
}

// Open loop through blocking calls (stream(), embed()): the pacing thread queues intended send
// times, a pool of workers takes them.
Clock::time_point run_open_pool(ProxyClient& client, const Context& ctx, Workload workload,
                                double rate, Phase& phase, RunResult& r) {
  std::mutex mu;
  std::condition_variable cv;
  std::deque<Clock::time_point> due;
  bool closed = false;
  Clock::time_point give_up = Clock::time_point::max();
  std::vector<std::unique_ptr<Slot>> slots;
  std::vector<std::thread> workers;
  const ChatRequest unused;
  for (std::size_t i = 0; i < ctx.open_workers; ++i) slots.push_back(std::make_unique<Slot>());
  for (std::size_t i = 0; i < ctx.open_workers; ++i) {
    workers.emplace_back([&, slot = slots[i].get()] {
      Slot& s = *slot;
      while (true) {
        Clock::time_point intended;
        {
          std::unique_lock lock(mu);
          cv.wait(lock, [&] { return closed || !due.empty(); });
          if (due.empty()) return;  // closed and nothing left
          intended = due.front();
          due.pop_front();
          if (Clock::now() >= give_up) {
            ++s.errors;
            s.done.fetch_add(1);
            if (s.first_error.empty()) s.first_error = "not sent before the drain time ended";
            continue;
          }
        }
        blocking_call(client, workload, s, unused, intended);
        s.done.fetch_add(1);
      }
    });
  }
  phase.begin();
  pace(rate, ctx.limits, [&](Clock::time_point intended) {
    {
      std::lock_guard lock(mu);
      due.push_back(intended);
    }
    cv.notify_one();
  });
  {
    std::lock_guard lock(mu);
    closed = true;
    give_up = after(Clock::now(), ctx.drain_seconds);
  }
  cv.notify_all();
  for (auto& w : workers) w.join();
  const auto end = Clock::now();
  for (const auto& s : slots) s->merge_into(r);
  return end;
}

}  // namespace

RunResult run_client_open(const Context& ctx, Workload workload, double rate) {
  RunResult r = new_result(workload, "open", 0);
  r.rate = rate;
  r.driver = "open";
  const bool async = workload == Workload::Chat || workload == Workload::Cache;
  r.api = async ? "complete_async() from a pacing thread"
                : std::string(workload == Workload::Stream ? "stream()" : "embed()") + " in " +
                      std::to_string(ctx.open_workers) + " worker threads";
  Phase phase(ctx);
  auto client =
      ProxyClient::create(client_config(ctx, workload, static_cast<int>(ctx.open_workers)));
  if (!client) {
    r.fail(client.error().describe());
    return r;
  }
  const ChatRequest fixed = chat_request(std::string(kCachePrompt));
  {
    // The same short closed warm-up as the baseline's: four at a time.
    RunResult warm;
    run_threads(4, ctx.warmup, nullptr, nullptr, warm, nullptr,
                [&](Slot& s) { blocking_call(*client, workload, s, fixed); });
  }
  MetricsDelta metrics;
  metrics.begin(*client);
  const auto end = async ? run_open_async(*client, ctx, workload, rate, phase, r)
                         : run_open_pool(*client, ctx, workload, rate, phase, r);
  phase.end(r, end);
  metrics.end(*client, workload, r);
  return r;
}

}  // namespace glmproxy::bench
