#pragma once

// The glmproxy side of each step: a fresh ProxyClient per step, driven through the public API.

#include "glmproxy/glmproxy.hpp"
#include "load/run.hpp"

namespace glmproxy::bench {

/// How a closed-loop step calls the client.
enum class Driver {
  Blocking,  ///< `concurrency` threads, each calling complete()/stream()/embed() in a loop
  Async,     ///< complete_async(): each answer's callback sends the next request
  Feeder,    ///< complete_async() from one thread keeping N out; callbacks record and release
};

/// The Config of a step's client: the upstream, key "sk-bench", POOL_MAX_CONNECTIONS at least
/// `connections`, request deadlines from `ctx`, and per workload CACHE_ENABLED (cache) or
/// BATCHING_ENABLED (embed). Everything else is the library's default.
Config client_config(const Context& ctx, Workload workload, int connections);

/// Closed loop. Chat: Blocking, Async or Feeder; stream, cache, embed: Blocking (stream() and
/// embed() block; cache hits are answered on the calling thread); coalesce: bursts of `concurrency`
/// identical complete_async() calls, each burst waited for.
RunResult run_client_closed(const Context& ctx, Workload workload, int concurrency, Driver driver);

/// Open loop at `rate` requests per second, latency from each request's intended send time:
/// chat and cache through complete_async() from a pacing thread; stream and embed through
/// ctx.open_workers threads making blocking calls (a request waits in a queue when all are busy,
/// and that wait counts).
RunResult run_client_open(const Context& ctx, Workload workload, double rate);

}  // namespace glmproxy::bench
