#include "keys/tenants.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <utility>

#include "cache/cache_key.hpp"
#include "core/no_throw.hpp"
#include "core/saturating.hpp"
#include "core/secrets.hpp"

namespace glmproxy::detail {

namespace {

LruCacheOptions record_cache_options(const Config& config) {
  LruCacheOptions o;
  o.max_entries = config.keys.cache_size;
  o.max_bytes = SIZE_MAX / 2;  // bounded by entries
  o.ttl = config.keys.cache_ttl;
  o.clock = config.clock;
  return o;
}

}  // namespace

// No exception leaves a public function (ProxyClient calls them on caller threads and on its
// I/O thread) nor the writer thread: each runs in no_throw(), an exception becomes an Error
// with code Internal (or, where there is no Error to return, a log line).

Result<std::unique_ptr<Tenants>> Tenants::create(const Config& config) {
  return no_throw({"APIKEYS_FILE ", config.keys.file, ": starting the key registry"},
                  [&]() -> Result<std::unique_ptr<Tenants>> {
                    auto store = KeyStore::open(config.keys.file);
                    if (!store) return std::move(store).error();
                    // Throws (std::system_error) when the writer thread cannot start.
                    return std::unique_ptr<Tenants>(new Tenants(config, std::move(*store)));
                  });
}

Tenants::Tenants(const Config& config, std::unique_ptr<KeyStore> store)
    : limits_(config.rate_limit),
      wall_clock_(config.wall_clock),
      logger_(config.logger),
      log_level_(config.log_level),
      store_(std::move(store)),
      records_(record_cache_options(config)),
      secrets_(store_->keys_at_open()) {
  thread_ = std::thread([this] { writer(); });
}

Tenants::~Tenants() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  try {
    if (thread_.joinable()) thread_.join();
  } catch (...) {
    // join() throws only for a thread that is not joinable or is this one: neither here.
  }
  flush();
}

void Tenants::log(LogLevel level, std::string_view message) const noexcept {
  if (!logger_ || level < log_level_ || log_level_ == LogLevel::Off) return;
  try {
    // Log lines are public: scrubbed against every registered secret, as ProxyClient's are.
    logger_(level, scrub_registered(std::string(message)));
  } catch (...) {
    // A throwing logger must not take the writer thread (or a caller) down.
  }
}

// A key's record: from the cache (absolute TTL: a key removed from the file stops working
// within APIKEY_CACHE_TTL_MS however often it is used), else from the file.
Result<Tenants::RecordPtr> Tenants::record(std::string_view key) {  // may throw
  const CacheKey id = text_key(key);
  if (auto hit = records_.get(id)) return *hit;
  auto found = store_->find(key);
  if (!found) return std::move(found).error();
  RecordPtr record;
  if (*found) {
    record = std::make_shared<const KeyRecord>(std::move(**found));
    secrets_.add(record->key);  // scrubbed from every message from now on
  }
  records_.put(id, record, 1);
  return record;
}

Result<Tenants::RecordPtr> Tenants::known_record(std::string_view key) {
  auto found = record(key);
  if (found && !*found) {
    return make_error(ErrorCode::Unauthorized,
                      fmt::format("unknown tenant key {}", redact_key(key)));
  }
  return found;
}

Tenants::Usage& Tenants::usage_of(const KeyRecord& record) {
  auto [it, first] = usage_.try_emplace(record.key);
  Usage& u = it->second;
  if (first) {
    // The file's history seeds this process's view of the tenant's window.
    const auto t = now();
    for (const UsageWindow& w : record.usage_windows) {
      u.window.add_to_bucket(QuotaWindow::bucket_of(w.start), w.tokens, t);
    }
    u.lifetime = record.total_lifetime_tokens;
  }
  return u;
}

Result<std::string> Tenants::admit(std::string_view key) {
  return no_throw({"tenant keys: admitting a request"}, [&] { return admit_unguarded(key); });
}

Result<std::string> Tenants::admit_unguarded(std::string_view key) {
  if (key.empty()) {
    return make_error(ErrorCode::Unauthorized,
                      "no tenant key: ChatRequest::api_key must name a key of APIKEYS_FILE");
  }
  auto found = known_record(key);
  if (!found) return std::move(found).error();
  const RecordPtr& r = *found;
  const auto t = now();
  if (r->expiry && *r->expiry <= t) {
    return make_error(ErrorCode::Forbidden,
                      fmt::format("tenant key {} expired on {}", redact_key(key), r->expiry_date));
  }
  std::lock_guard lock(mu_);
  Usage& u = usage_of(*r);
  const std::int64_t used = u.window.used(t);
  if (used >= r->token_limit_per_5h) {
    Error e = make_error(ErrorCode::QuotaExceeded,
                         fmt::format("tenant key {} used {} of its {} tokens in the last 5 hours",
                                     redact_key(key), used, r->token_limit_per_5h));
    e.retry_after = u.window.time_until_below(t, r->token_limit_per_5h);
    return e;
  }
  return r->model;
}

void Tenants::record_usage(std::string_view key, std::int64_t tokens) noexcept {
  auto recorded =
      no_throw({"tenant keys: a request's usage was not counted"}, [&]() -> Result<void> {
        record_usage_unguarded(key, tokens);
        return {};
      });
  if (!recorded) log(LogLevel::Error, recorded.error().message);
}

void Tenants::record_usage_unguarded(std::string_view key, std::int64_t tokens) {
  if (key.empty() || tokens <= 0) return;
  auto found = record(key);
  if (!found || !*found) return;  // the key went away meanwhile: nothing to charge
  const auto t = now();
  bool wake = false;
  {
    std::lock_guard lock(mu_);
    Usage& u = usage_of(**found);
    // An upstream's count is untrusted: every sum stops at INT64_MAX.
    u.window.add(t, tokens);
    u.lifetime = saturating_add(u.lifetime, tokens);
    u.last_used = std::max(u.last_used, t);
    u.used = true;
    std::int64_t& batch = pending_[{std::string(key), QuotaWindow::bucket_of(t)}];
    batch = saturating_add(batch, tokens);
    auto& at = pending_used_at_[std::string(key)];
    at = std::max(at, t);
    if (pending_updates_++ == 0) first_pending_ = std::chrono::steady_clock::now();
    wake = pending_updates_ >= limits_.max_batch_size || pending_updates_ == 1;
  }
  if (wake) cv_.notify_all();
}

// Writes when RATE_LIMIT_MAX_BATCH_SIZE updates are pending, or RATE_LIMIT_BATCH_INTERVAL_MS
// after the first pending one, whichever comes first.
void Tenants::writer() noexcept {
  try {
    std::unique_lock lock(mu_);
    while (!stopping_) {
      if (pending_updates_ == 0) {
        cv_.wait(lock);
        continue;
      }
      const auto due = first_pending_ + limits_.batch_interval;
      if (pending_updates_ < limits_.max_batch_size && std::chrono::steady_clock::now() < due) {
        cv_.wait_until(lock, due);
        continue;
      }
      write_pending(lock);
    }
  } catch (...) {
    // Only locking and waiting could throw (std::system_error): the thread ends, the process
    // goes on, and the destructor still writes what is pending.
    log(LogLevel::Error, exception_error({"tenant keys: the usage writer thread stopped"}).message);
  }
}

// A failed write loses this batch (never more), like a crash between writes would; it is
// logged (LogLevel::Error), never thrown: this runs on the writer thread and in the destructor.
void Tenants::write_pending(std::unique_lock<std::mutex>& lock) noexcept {
  if (pending_updates_ == 0) return;
  std::vector<UsageDelta> deltas;
  auto taken = no_throw({"APIKEYS_FILE ", store_->path(), ": usage not written"},
                        [&]() -> Result<std::chrono::system_clock::time_point> {
                          deltas.reserve(pending_.size());
                          for (const auto& [id, tokens] : pending_) {
                            UsageDelta d;
                            d.key = id.first;
                            d.tokens = tokens;
                            d.bucket_start = QuotaWindow::bucket_start(id.second);
                            d.used_at = pending_used_at_[id.first];
                            deltas.push_back(std::move(d));
                          }
                          return now() - QuotaWindow::kWindow - QuotaWindow::kBucket;
                        });
  // Dropped even when copying them failed: retrying the same failure would only spin.
  pending_.clear();
  pending_used_at_.clear();
  pending_updates_ = 0;
  lock.unlock();
  Result<std::size_t> written =
      taken ? store_->apply(deltas, *taken) : Result<std::size_t>(std::move(taken).error());
  if (!written) {
    const std::string& why = written.error().message;
    try {
      log(LogLevel::Error, "tenant keys: a usage batch was lost: " + why);
    } catch (...) {
      log(LogLevel::Error, why);  // no memory for the longer line
    }
  }
  lock.lock();
}

void Tenants::flush() noexcept {
  try {
    std::unique_lock lock(mu_);
    write_pending(lock);
  } catch (...) {
    // Only locking mu_ can throw here (std::system_error), and it does not.
  }
}

Result<KeyStats> Tenants::stats(std::string_view key) {
  return no_throw({"tenant keys: key_stats()"}, [&] { return stats_unguarded(key); });
}

Result<KeyStats> Tenants::stats_unguarded(std::string_view key) {
  auto found = known_record(key);
  if (!found) return std::move(found).error();
  const RecordPtr& r = *found;
  const auto t = now();
  KeyStats s;
  s.key = redact_key(key);
  s.name = r->name;
  s.model = r->model;
  s.token_limit_per_5h = r->token_limit_per_5h;
  s.expiry_date = r->expiry_date;
  s.created_at = r->created_at;
  s.is_expired = r->expiry && *r->expiry <= t;
  std::lock_guard lock(mu_);
  Usage& u = usage_of(*r);
  s.last_used = u.used ? format_iso8601(u.last_used) : r->last_used;
  s.total_lifetime_tokens = u.lifetime;
  s.current_usage.tokens_used_in_current_window = u.window.used(t);
  const auto started = u.window.oldest_use(t).value_or(t);
  s.current_usage.window_started_at = format_iso8601(started);
  s.current_usage.window_ends_at = format_iso8601(started + QuotaWindow::kWindow);
  s.current_usage.remaining_tokens = non_negative(
      saturating_sub(r->token_limit_per_5h, s.current_usage.tokens_used_in_current_window));
  return s;
}

void Tenants::invalidate(std::string_view key) noexcept {
  auto erased = no_throw({"tenant keys: invalidate_key()"}, [&]() -> Result<void> {
    records_.erase(text_key(key));
    return {};
  });
  if (!erased) log(LogLevel::Error, erased.error().message);
}

Result<std::unique_ptr<QuotaStore>> make_quota_store(const Config& config) {
  if (config.keys.file.empty()) return std::unique_ptr<QuotaStore>();
  auto tenants = Tenants::create(config);
  if (!tenants) return std::move(tenants).error();
  return std::unique_ptr<QuotaStore>(std::move(*tenants));
}

}  // namespace glmproxy::detail
