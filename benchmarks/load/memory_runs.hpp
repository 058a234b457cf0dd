#pragma once

// Memory: what an idle default client costs, and whether a long run through cache hits and
// misses grows the process.

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "load/run.hpp"

namespace glmproxy::bench {

/// What creating a default ProxyClient and leaving it idle costs in resident memory.
struct IdleRss {
  double idle_seconds = 0;
  std::int64_t before = 0, after_create = 0, after_idle = 0, after_second = 0, after_destroy = 0;
  /// What curl_global_init() (libcurl, OpenSSL) added at start-up, before any client: every
  /// libcurl user pays it once, so it is reported apart from the client's own cost.
  std::int64_t curl_global_init = 0;
  std::int64_t delta() const noexcept { return after_idle - before; }
};
IdleRss measure_idle_rss(const std::string& base_url, double idle_seconds);

/// The long run: one thread calling complete() on a CACHE_ENABLED client with a small
/// CACHE_MAX_SIZE, one request in `miss_every` a new prompt (a miss: an upstream call, a store,
/// an eviction), the others one of `hot_prompts` repeated prompts (hits).
struct SoakOptions {
  std::uint64_t requests = 1'000'000;
  std::uint64_t sample_every = 100'000;  ///< RSS sample interval; the first is the warm-up
  std::uint64_t miss_every = 4;
  std::size_t hot_prompts = 64;
  std::size_t cache_max_entries = 256;
  double max_seconds = 1800;  ///< stops early (and says so) past this
};
struct SoakResult {
  SoakOptions options;
  std::uint64_t requests = 0, errors = 0, hits = 0, misses = 0, upstream_calls = 0;
  std::uint64_t evictions = 0;
  std::string first_error;
  double seconds = 0;
  bool stopped_early = false;
  std::int64_t rss_start = 0, rss_after_create = 0, rss_end = 0;
  std::vector<std::pair<std::uint64_t, std::int64_t>> samples;  ///< (requests done, RSS bytes)
  std::int64_t rss_warm = 0;           ///< RSS at the end of the warm-up (the first sample)
  std::int64_t growth_after_warm = 0;  ///< rss_end - rss_warm
  std::int64_t max_growth_after_warm = 0;
};
SoakResult run_soak(const Context& ctx, const SoakOptions& options);

}  // namespace glmproxy::bench
