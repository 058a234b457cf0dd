#include "load/client_calls.hpp"

namespace glmproxy::bench {

// One blocking call of `workload` on `client`, recorded in `s` (latency from `start`).
void blocking_call(ProxyClient& client, Workload workload, Slot& s, const ChatRequest& fixed,
                   std::optional<Clock::time_point> intended) {
  switch (workload) {
    case Workload::Chat:
    case Workload::Coalesce: {
      const ChatRequest request = chat_request(chat_prompt(next_request_id()));
      const auto start = intended.value_or(Clock::now());
      auto reply = client.complete(request);
      s.latency.record(Clock::now() - start);
      if (!reply) s.fail(reply.error());
      return;
    }
    case Workload::Cache: {
      const auto start = intended.value_or(Clock::now());
      auto reply = client.complete(fixed);
      s.latency.record(Clock::now() - start);
      if (!reply) {
        s.fail(reply.error());
      } else if (!reply->from_cache) {
        ++s.not_from_cache;
      }
      return;
    }
    case Workload::Stream: {
      const ChatRequest request = chat_request(chat_prompt(next_request_id()));
      struct First {
        bool seen = false;
        Clock::time_point at;
      } first;
      First* f = &first;
      const auto start = intended.value_or(Clock::now());
      auto reply = client.stream(request, [f](const StreamEvent& e) {
        if (!f->seen && e.type == StreamEvent::Type::Text) {
          f->seen = true;
          f->at = Clock::now();
        }
        return true;
      });
      s.latency.record(Clock::now() - start);
      if (!reply) {
        s.fail(reply.error());
      } else if (!first.seen) {
        s.fail(Error{ErrorCode::BadResponse, "stream without a Text event", 0, {}, {}});
      } else {
        s.ttft.record(first.at - start);
      }
      return;
    }
    case Workload::Embed: {
      const EmbeddingRequest request = embed_request(next_request_id());
      const auto start = intended.value_or(Clock::now());
      auto reply = client.embed(request);
      s.latency.record(Clock::now() - start);
      if (!reply) s.fail(reply.error());
      return;
    }
  }
}

void MetricsDelta::end(const ProxyClient& client, Workload workload, RunResult& r) const {
  const MetricsSnapshot now = client.metrics();
  r.client_upstream = now.upstream_requests - start_.upstream_requests;
  // The client's own count of sockets it opened (to compare with the upstream's).
  r.extra.emplace_back(
      "client_connections_opened",
      static_cast<double>(now.pool.connections_opened - start_.pool.connections_opened));
  r.extra.emplace_back("client_retries",
                       static_cast<double>(now.upstream.retries - start_.upstream.retries));
  auto add = [&](const char* name, std::uint64_t a, std::uint64_t b) {
    r.extra.emplace_back(name, static_cast<double>(a - b));
  };
  if (workload == Workload::Coalesce) {
    add("coalescing_leaders", now.coalescing.leaders, start_.coalescing.leaders);
    add("coalescing_joined", now.coalescing.joined, start_.coalescing.joined);
  } else if (workload == Workload::Cache) {
    add("cache_hits", now.cache.hits, start_.cache.hits);
    add("cache_misses", now.cache.misses, start_.cache.misses);
  } else if (workload == Workload::Embed) {
    const auto batches = now.batching.batches - start_.batching.batches;
    const auto batched = now.batching.batched_requests - start_.batching.batched_requests;
    r.extra.emplace_back("batches", static_cast<double>(batches));
    r.extra.emplace_back(
        "mean_batch_size",
        batches == 0 ? 0.0 : static_cast<double>(batched) / static_cast<double>(batches));
  }
}

RunResult new_result(Workload workload, const char* mode, int concurrency) {
  RunResult r;
  r.workload = std::string(to_string(workload));
  r.mode = mode;
  r.client = "glmproxy";
  r.concurrency = concurrency;
  r.has_ttft = workload == Workload::Stream;
  return r;
}

}  // namespace glmproxy::bench
