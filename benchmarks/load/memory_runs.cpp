#include "load/memory_runs.hpp"

#include <algorithm>
#include <cstdio>
#include <thread>

#include "glmproxy/glmproxy.hpp"
#include "load/client_runs.hpp"

namespace glmproxy::bench {

IdleRss measure_idle_rss(const std::string& base_url, double idle_seconds) {
  IdleRss out;
  out.idle_seconds = idle_seconds;
  Config config;  // a default client: only where to send and as whom
  config.upstream.openai_base_url = base_url;
  config.upstream.api_key = "sk-bench";
  const auto idle = std::chrono::duration<double>(idle_seconds);
  out.before = rss_bytes();
  {
    auto first = ProxyClient::create(config);
    out.after_create = rss_bytes();
    std::this_thread::sleep_for(idle);
    out.after_idle = rss_bytes();
    auto second = ProxyClient::create(config);
    std::this_thread::sleep_for(idle / 2);
    out.after_second = rss_bytes();
  }
  out.after_destroy = rss_bytes();
  return out;
}

SoakResult run_soak(const Context& ctx, const SoakOptions& options) {
  SoakResult out;
  out.options = options;
  out.rss_start = rss_bytes();
  Config config = client_config(ctx, Workload::Cache, 1);
  config.cache.max_entries = options.cache_max_entries;
  auto client = ProxyClient::create(config);
  if (!client) {
    out.errors = 1;
    out.first_error = client.error().describe();
    return out;
  }
  out.rss_after_create = rss_bytes();
  out.samples.emplace_back(0, out.rss_after_create);

  std::vector<ChatRequest> hot(options.hot_prompts);
  for (std::size_t i = 0; i < hot.size(); ++i) {
    hot[i].messages = {{"user", "glmproxy-bench soak hot prompt " + std::to_string(i)}};
  }
  ChatRequest miss;
  miss.messages = {{"user", ""}};
  const auto start = Clock::now();
  const auto stop_at = after(start, options.max_seconds);
  const std::uint64_t upstream_before = client->metrics().upstream_requests;
  std::uint64_t i = 0;
  for (; i < options.requests; ++i) {
    const ChatRequest* request = nullptr;
    if (options.miss_every != 0 && i % options.miss_every == options.miss_every - 1) {
      miss.messages[0].content = chat_prompt(next_request_id());
      request = &miss;
    } else {
      // Spread over the hot set (a multiplicative hash, so the order is not a plain cycle).
      request = &hot[(i * 2654435761u) % hot.size()];
    }
    auto reply = client->complete(*request);
    if (!reply) {
      ++out.errors;
      if (out.first_error.empty()) out.first_error = reply.error().describe();
    } else if (reply->from_cache) {
      ++out.hits;
    } else {
      ++out.misses;
    }
    const std::uint64_t done = i + 1;
    if (options.sample_every != 0 && done % options.sample_every == 0) {
      const std::int64_t rss = rss_bytes();
      out.samples.emplace_back(done, rss);
      std::fprintf(stderr, "  soak: %llu requests, RSS %.2f MiB, %.1f s\n",
                   static_cast<unsigned long long>(done), static_cast<double>(rss) / 1048576.0,
                   std::chrono::duration<double>(Clock::now() - start).count());
    }
    if ((done & 1023) == 0 && Clock::now() >= stop_at) {
      out.stopped_early = true;
      ++i;
      break;
    }
  }
  out.requests = i;
  out.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  const MetricsSnapshot m = client->metrics();
  out.upstream_calls = m.upstream_requests - upstream_before;
  out.evictions = m.cache.evictions;
  out.rss_end = rss_bytes();
  if (out.samples.empty() || out.samples.back().first != out.requests) {
    out.samples.emplace_back(out.requests, out.rss_end);
  }
  // The warm-up is the first sample interval (the cache fills, the pool and the allocator's
  // arenas reach their working size); growth is measured from its end.
  const auto warm = std::find_if(out.samples.begin(), out.samples.end(),
                                 [&](const auto& s) { return s.first >= options.sample_every; });
  out.rss_warm = warm != out.samples.end() ? warm->second : out.rss_after_create;
  out.growth_after_warm = out.rss_end - out.rss_warm;
  for (auto it = warm; it != out.samples.end(); ++it) {
    out.max_growth_after_warm = std::max(out.max_growth_after_warm, it->second - out.rss_warm);
  }
  return out;
}

}  // namespace glmproxy::bench
