#pragma once

// The stages every call (chat, stream, embeddings) goes through, in order:
//   validate -> tenant key -> quota -> cache lookup -> (single-flight, dispatch: the calls)
//   -> account usage and store the answer,
// and the timing of each public call (metrics, profiles). The stores behind it are seams: the
// response cache (CacheStore) and the tenants' quotas and usage (QuotaStore).

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "cache/cache_key.hpp"
#include "cache/cache_store.hpp"
#include "glmproxy/config.hpp"
#include "glmproxy/error.hpp"
#include "glmproxy/request.hpp"
#include "glmproxy/response.hpp"
#include "keys/quota_store.hpp"
#include "metrics/profiler.hpp"
#include "metrics/registry.hpp"

namespace glmproxy::detail {

/// What a request's CachePolicy means with this client's configuration.
struct CallPolicy {
  bool read_cache = false, write_cache = false, coalesce = false;
};

/// Thread safety: thread-safe (every stage may run on any thread).
class CallPipeline {
 public:
  using Clock = std::chrono::steady_clock;

  /// Opens the key registry (APIKEYS_FILE) and the response cache (CACHE_ENABLED).
  static Result<std::unique_ptr<CallPipeline>> create(const Config& config);
  /// The same with the stores given (another implementation of either seam, e.g. a test's
  /// double or a shared one): `quotas` null = no key registry, `cache` null = no cache.
  static std::unique_ptr<CallPipeline> with_stores(const Config& config,
                                                   std::unique_ptr<QuotaStore> quotas,
                                                   std::unique_ptr<CacheStore> cache);
  ~CallPipeline();  ///< writes the last pending usage

  /// Validate, tenant key, quota: the model the call goes to (with a key registry, a key's
  /// model override replaces `model` when `key_model` is true: chat calls).
  Result<std::string> admit(std::string_view request_id, const std::string& api_key,
                            std::string model, bool key_model, Trace* trace);
  CallPolicy policy(CachePolicy p) const noexcept;
  /// Whose answer a request gets: its tenant's with a key registry; without one `api_key` is
  /// ignored (docs/tenants.md), by the cache and coalescing too.
  std::string_view tenant_scope(const std::string& api_key) const noexcept {
    return tenants_ ? std::string_view(api_key) : std::string_view();
  }
  std::optional<CachedAnswerPtr> lookup(const CacheKey& key, Trace* trace);
  void store(const CacheKey& key, CachedAnswer answer);
  /// Upstream-reported tokens: metrics, and a tenant's quota and usage file (with a registry).
  void charge(const std::string& tenant, const Usage& usage);

  /// PROFILING_ENABLED: a trace per request (nullptr otherwise).
  std::shared_ptr<Trace> begin_trace(std::string_view request_id, Api api, bool stream);
  /// A public call ended: its metrics and, with PROFILING_ENABLED, its profile.
  template <class R>
  void finish_call(Api api, Clock::time_point start, Trace* trace, const Result<R>& r);
  /// Neither metrics nor profiles: the calls go straight through.
  bool timed() const noexcept { return metrics_.enabled() || profiler_ != nullptr; }
  static Api api_of(Protocol p) noexcept {
    return p == Protocol::Anthropic ? Api::Anthropic : Api::OpenAI;
  }

  Metrics& metrics() noexcept { return metrics_; }
  const Metrics& metrics() const noexcept { return metrics_; }
  Profiler* profiler() const noexcept { return profiler_.get(); }
  QuotaStore* tenants() const noexcept { return tenants_.get(); }
  const CacheStore* cache() const noexcept { return cache_.get(); }

 private:
  explicit CallPipeline(const Config& config);

  const Config& config_;
  Metrics metrics_;
  std::unique_ptr<QuotaStore> tenants_;  // with APIKEYS_FILE: the key file (Tenants)
  std::unique_ptr<CacheStore> cache_;    // when CACHE_ENABLED
  std::unique_ptr<Profiler> profiler_;   // when PROFILING_ENABLED
};

template <class R>
void CallPipeline::finish_call(Api api, Clock::time_point start, Trace* trace, const Result<R>& r) {
  const Outcome outcome = !r ? Outcome::Error : (r->from_cache ? Outcome::CacheHit : Outcome::Ok);
  if (metrics_.enabled()) {
    const auto latency =
        std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - start);
    metrics_.request_done(api, outcome, r ? nullptr : &r.error(), latency);
  }
  if (trace == nullptr) return;
  int status = 0;
  std::string_view code;
  if (!r) {
    code = to_string(r.error().code);
    status = r.error().http_status;
  } else if constexpr (requires { r->http_status; }) {
    status = r->http_status;
  }
  profiler_->finish(*trace, outcome_name(outcome), code, status);
}

}  // namespace glmproxy::detail
