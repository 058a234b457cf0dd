#include "transport/admission_queue.hpp"

#include <fmt/format.h>

#include "core/url.hpp"
#include "protocol/errors.hpp"

namespace glmproxy::detail {

namespace {

BreakerOptions breaker_options(const Config& c) {
  BreakerOptions o;
  o.failure_threshold = c.admission.breaker_failures;
  o.failure_window = c.admission.breaker_window;
  o.cooldown = c.admission.breaker_cooldown;
  return o;
}

}  // namespace

AdmissionQueue::AdmissionQueue(const Config& config, std::unique_ptr<ConcurrencyLimiter> limiter)
    : pool_max_(config.pool.max_connections),
      acquire_timeout_(config.pool.acquire_timeout),
      total_timeout_(config.timeouts.total),
      admission_(config.admission),
      limiter_(limiter ? std::move(limiter) : make_concurrency_limiter(config)),
      breaker_(breaker_options(config)),
      limit_max_(limiter_->max_limit()) {}

void AdmissionQueue::push(TransferPtr t, Clock::time_point now) {
  t->state = TransferState::Waiting;
  t->admit_deadline = now + acquire_timeout_;
  t->queued_at = now;
  waiting_.push_back(std::move(t));
}

void AdmissionQueue::admit(Clock::time_point now, const std::function<int()>& on_wire,
                           const Act& act) {
  std::size_t i = 0, held = 0;
  while (on_wire() < pool_max_ && i < waiting_.size() && held < kAdmitScan) {
    Transfer& w = *waiting_[i];
    std::optional<ConcurrencyLease> lease;
    if (now < w.deadline) {
      lease = limiter_->try_acquire(w.ex.model, now);
      if (!lease) {
        ++i;
        ++held;
        continue;
      }
    }
    TransferPtr t = std::move(waiting_[i]);
    waiting_.erase(waiting_.begin() + static_cast<std::ptrdiff_t>(i));
    if (!lease) {  // its total deadline passed: it is not sent, whatever its model's limit
      Error e = total_timeout_error(total_timeout_of(*t, total_timeout_));
      act({Decision::Kind::Reject, std::move(t), std::move(e)});
      continue;
    }
    t->lease = lease;
    // "scheme://host[:port]" without userinfo: the breaker is per upstream host, and its key
    // goes into messages.
    if (t->host.empty()) t->host = url_origin(t->ex.url);
    std::chrono::milliseconds wait{0};
    if (!breaker_.allow(t->host, now, &wait)) {
      // The lease is taken before the breaker is asked, so that a half-open breaker's one probe
      // is not spent on a transfer its model's limit then holds.
      release(*t, ConcurrencyLimiter::Outcome::Other, now);
      rejections_.fetch_add(1, std::memory_order_relaxed);
      Error e = make_error(
          ErrorCode::UpstreamError,
          fmt::format("circuit breaker open for {}: {} consecutive failures; next probe in "
                      "{} ms (GLMPROXY_BREAKER_COOLDOWN_MS={})",
                      t->host, admission_.breaker_failures, wait.count(),
                      admission_.breaker_cooldown.count()));
      e.upstream_code = "circuit_open";
      e.retry_after = wait;
      act({Decision::Kind::Reject, std::move(t), std::move(e)});
      continue;
    }
    act({Decision::Kind::Admit, std::move(t), Error{}});
  }
}

void AdmissionQueue::expire(Clock::time_point now, int on_wire, const Act& act) {
  while (!waiting_.empty() && waiting_.front()->admit_deadline <= now) {
    TransferPtr t = std::move(waiting_.front());
    waiting_.pop_front();
    const std::string& model = t->ex.model;
    std::string why;
    if (on_wire >= pool_max_) {
      why = fmt::format("{} requests on the wire", on_wire);
    } else if (const int limit = limiter_->limit(model); limit < limit_max_) {
      why = fmt::format(
          "model {} held to {} requests at once after the upstream said it had too many "
          "(429/1302)",
          model, limit);
    } else {
      // The configured limit, not a cut: a 429 is not what held it.
      why = fmt::format("model {} at its limit of {} requests at once (GLMPROXY_MODEL_CONCURRENCY)",
                        model, limit);
    }
    Error e =
        make_error(ErrorCode::PoolTimeout, fmt::format("no connection slot became free within "
                                                       "POOL_ACQUIRE_TIMEOUT={} ms ({})",
                                                       acquire_timeout_.count(), why));
    act({Decision::Kind::Expire, std::move(t), std::move(e)});
  }
}

void AdmissionQueue::on_attempt_end(Transfer& t, const AttemptEnd& end, Clock::time_point now) {
  using Outcome = ConcurrencyLimiter::Outcome;
  const int status = static_cast<int>(t.status);
  const Error* abort = t.abort_error ? &*t.abort_error : nullptr;
  if (t.probe) {
    // Warm-up and keep-alive probes say nothing about the upstream's health: a warm-up that
    // failed before the first real request must not open the breaker.
  } else if (t.finished_early) {
    breaker_.on_success(t.host);  // answered in full; how the body was closed is ours
  } else if (abort != nullptr && abort->code == ErrorCode::Cancelled) {
    breaker_.on_abandon(t.host);
  } else if (is_server_failure(status) || (!end.answered && abort == nullptr) ||
             (abort != nullptr && abort->code == ErrorCode::Timeout)) {
    breaker_.on_failure(t.host, now);
  } else if (status > 0) {
    breaker_.on_success(t.host);
  } else {
    breaker_.on_abandon(t.host);
  }
  Outcome outcome = Outcome::Other;
  if (end.answer != nullptr && status == 429) {
    // Too many at once halves the model's limit; quota and balance codes say nothing about
    // concurrency.
    if (is_too_many_at_once(status, end.answer->upstream_code)) outcome = Outcome::Overloaded;
  } else if (status >= 200 && status < 300) {
    outcome = Outcome::Success;
  }
  release(t, outcome, now);  // nothing left to give back if a ReadingOut stream was answered
  opened_.store(breaker_.opened(), std::memory_order_relaxed);
  t.free_retries += outcome == Outcome::Overloaded ? 1 : 0;
}

void AdmissionQueue::release(Transfer& t, ConcurrencyLimiter::Outcome outcome,
                             Clock::time_point now) {
  if (!t.lease) return;
  const ConcurrencyLease lease = *t.lease;
  t.lease.reset();
  const std::string& model = t.ex.model;
  const int before = limiter_->limit(model);
  const std::uint64_t cuts = limiter_->decreases();
  limiter_->release(model, lease, outcome, now);
  decreases_.fetch_add(limiter_->decreases() - cuts, std::memory_order_relaxed);
  publish_limit(model, before);
}

void AdmissionQueue::abandon(Transfer& t, Clock::time_point now) {
  release(t, ConcurrencyLimiter::Outcome::Other, now);
  breaker_.on_abandon(t.host);
}

// A limit that moved is published for stats() (rare: a 429/1302, or a step back up).
void AdmissionQueue::publish_limit(const std::string& model, int before) {
  const int after = limiter_->limit(model);
  if (after == before) return;
  try {
    std::lock_guard lock(limits_mu_);
    if (after >= limit_max_) {
      model_limits_.erase(model);
    } else {
      model_limits_[model] = after;
    }
  } catch (...) {
    // Out of memory for the name: the published limit is stale, admission is not.
  }
}

std::optional<AdmissionQueue::Clock::time_point> AdmissionQueue::next_expiry() const {
  if (waiting_.empty()) return std::nullopt;
  return waiting_.front()->admit_deadline;
}

std::vector<TransferPtr> AdmissionQueue::take_all() {
  std::vector<TransferPtr> out;
  out.reserve(waiting_.size());
  for (auto& t : waiting_) out.push_back(std::move(t));
  waiting_.clear();
  return out;
}

AdmissionStats AdmissionQueue::stats() const noexcept {
  AdmissionStats s;
  s.concurrency_decreases = decreases_.load(std::memory_order_relaxed);
  s.breaker_opened = opened_.load(std::memory_order_relaxed);
  s.breaker_rejections = rejections_.load(std::memory_order_relaxed);
  s.model_concurrency_max = limit_max_;
  try {
    std::lock_guard lock(limits_mu_);
    s.model_limits = model_limits_;
  } catch (...) {
    // Out of memory copying the names: the counters still go out.
  }
  return s;
}

}  // namespace glmproxy::detail
