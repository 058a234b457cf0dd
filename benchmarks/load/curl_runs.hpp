#pragma once

// The baselines: the same requests sent with raw libcurl against the same upstream in the same
// run. They do only the HTTP exchange (no JSON parsing), so a ratio to them is what glmproxy
// costs on top of the transport it is built on.

#include "load/run.hpp"

namespace glmproxy::bench {

/// One easy handle reused, requests one after another on this thread (concurrency 1).
RunResult run_curl_easy(const Context& ctx, Workload workload);

/// A curl_multi loop on this thread keeping `concurrency` requests in flight (closed loop);
/// for Workload::Coalesce, bursts of `concurrency` identical requests, each burst waited for.
RunResult run_curl_multi(const Context& ctx, Workload workload, int concurrency);

/// The curl_multi loop fed at `rate` requests per second by a pacing thread (open loop);
/// latency counts from each request's intended send time.
RunResult run_curl_open(const Context& ctx, Workload workload, double rate);

}  // namespace glmproxy::bench
