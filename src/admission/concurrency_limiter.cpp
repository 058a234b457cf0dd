#include "admission/concurrency_limiter.hpp"

#include "admission/aimd_limiter.hpp"
#include "glmproxy/config.hpp"

namespace glmproxy::detail {

std::unique_ptr<ConcurrencyLimiter> make_concurrency_limiter(const Config& config) {
  // A shared (Redis) allowance is chosen here once there is one; the admission queue only sees
  // the interface.
  AimdOptions o;
  o.max_limit = config.admission.model_concurrency > 0 ? config.admission.model_concurrency
                                                       : config.pool.max_connections;
  o.min_limit = 1;
  o.increase_interval = config.admission.increase_interval;
  return std::make_unique<AimdLimiter>(o);
}

}  // namespace glmproxy::detail
