#include "client/call_pipeline.hpp"

#include "client/http_checks.hpp"

namespace glmproxy::detail {

CallPipeline::CallPipeline(const Config& config)
    : config_(config),
      metrics_(config.metrics.enabled, config.metrics.retention,
               config.metrics.aggregation_interval, config.clock) {}

CallPipeline::~CallPipeline() = default;

Result<std::unique_ptr<CallPipeline>> CallPipeline::create(const Config& config) {
  std::unique_ptr<CallPipeline> p(new CallPipeline(config));
  auto quotas = make_quota_store(config);
  if (!quotas) return std::move(quotas).error();
  p->tenants_ = std::move(*quotas);
  p->cache_ = make_cache_store(config);
  if (config.profiling.enabled)
    p->profiler_ = std::make_unique<Profiler>(config.profiling.ring_size);
  return p;
}

std::unique_ptr<CallPipeline> CallPipeline::with_stores(const Config& config,
                                                        std::unique_ptr<QuotaStore> quotas,
                                                        std::unique_ptr<CacheStore> cache) {
  std::unique_ptr<CallPipeline> p(new CallPipeline(config));
  p->tenants_ = std::move(quotas);
  p->cache_ = std::move(cache);
  if (config.profiling.enabled)
    p->profiler_ = std::make_unique<Profiler>(config.profiling.ring_size);
  return p;
}

Result<std::string> CallPipeline::admit(std::string_view request_id, const std::string& api_key,
                                        std::string model, bool key_model, Trace* trace) {
  if (auto ok = check_request_id(request_id); !ok) return std::move(ok).error();
  if (tenants_) {
    auto override_model = tenants_->admit(api_key);
    if (!override_model) return std::move(override_model).error();
    if (key_model && !override_model->empty()) model = std::move(*override_model);
  }
  if (trace != nullptr) trace->model = model;
  return model;
}

CallPolicy CallPipeline::policy(CachePolicy p) const noexcept {
  CallPolicy out;
  out.read_cache = cache_ && p == CachePolicy::Default;
  out.write_cache = cache_ && p != CachePolicy::Bypass;
  out.coalesce = config_.cache.coalesce && p == CachePolicy::Default;
  return out;
}

std::optional<CachedAnswerPtr> CallPipeline::lookup(const CacheKey& key, Trace* trace) {
  if (!cache_) return std::nullopt;
  auto hit = cache_->get(key);
  if (trace != nullptr) trace->cache = Clock::now();
  return hit;
}

void CallPipeline::store(const CacheKey& key, CachedAnswer answer) {
  if (!cache_) return;
  cache_->put(key, std::make_shared<const CachedAnswer>(std::move(answer)));
}

void CallPipeline::charge(const std::string& tenant, const Usage& usage) {
  metrics_.tokens(usage);
  if (tenants_) tenants_->record_usage(tenant, usage.total_tokens);
}

std::shared_ptr<Trace> CallPipeline::begin_trace(std::string_view request_id, Api api,
                                                 bool stream) {
  if (!profiler_) return nullptr;
  auto trace = profiler_->begin(request_id, api_name(api));
  trace->stream = stream;
  return trace;
}

}  // namespace glmproxy::detail
