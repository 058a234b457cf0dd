// The client's wiring: start, shutdown, send(), metrics and the small calls.

#include "client/client.hpp"

#include <fmt/format.h>

#include <functional>
#include <memory>
#include <string>
#include <utility>

#include "client/blocking_wait.hpp"
#include "client/diagnostics.hpp"
#include "client/http_checks.hpp"
#include "config/variables.hpp"
#include "metrics/snapshot.hpp"
#include "protocol/protocol.hpp"

namespace glmproxy::detail {

Client::Client(Config config) : config_(std::move(config)), secrets_(config_secrets(config_)) {}

Result<void> Client::start() {
  auto callbacks = CallbackPool::create(config_.callback_threads, config_.callback_executor);
  if (!callbacks) return std::move(callbacks).error();
  callbacks_ = std::move(*callbacks);
  auto transport = Transport::create(config_);
  if (!transport) return std::move(transport).error();
  transport_ = std::move(*transport);
  auto pipeline = CallPipeline::create(config_);
  if (!pipeline) return std::move(pipeline).error();
  pipeline_ = std::move(*pipeline);
  dispatcher_ = std::make_unique<Dispatcher>(config_, *transport_);
  if (config_.pool.warm && config_.pool.min_connections > 0) {
    auto warmed = transport_->warm(config_.upstream.openai_base_url, config_.pool.min_connections,
                                   config_.timeouts.connect);
    if (!warmed) log(LogLevel::Warn, "pool warm-up failed: " + warmed.error().describe());
  }
  return {};
}

// Every pending request is answered, never on the destroying thread: the batching queue hands
// what waits in it to the transport, whose I/O thread then resolves everything and ends; the
// complete_async() callbacks go to the callback executor as always. Everything stays alive
// meanwhile, so a callback that sends again (a retry loop) is answered too (ShuttingDown)
// instead of finding the client gone.
Client::~Client() {
  if (dispatcher_) dispatcher_->stop();  // (null when start() failed before making them)
  if (transport_) transport_->stop();
  // Then the callbacks still queued run (a callback that calls the client meanwhile is
  // answered ShuttingDown at once), and the pool's threads end.
  if (callbacks_) callbacks_->stop();
  dispatcher_.reset();
  transport_.reset();
  pipeline_.reset();  // after every answer was charged: writes the last usage
}

std::uint64_t Client::key_file_reads() const noexcept {
  return pipeline_ && pipeline_->tenants() ? pipeline_->tenants()->file_reads() : 0;
}
ClientDiagnostics Client::diagnostics() const noexcept {
  return diagnostics_of(transport_->stats(), key_file_reads(), key_file_writes());
}

std::uint64_t Client::key_file_writes() const noexcept {
  return pipeline_ && pipeline_->tenants() ? pipeline_->tenants()->file_writes() : 0;
}

// Runs a complete_async() callback on the callback executor (the client's pool, or the
// application's), never on the I/O thread nor the caller's stack.
namespace {
// Set while a callback pool thread reads an upstream answer for one complete_async() call
// (Client::send_chat): its callback is then run right there instead of being posted again.
thread_local bool tls_reading_answer = false;
}  // namespace

void Client::post_callback(std::function<void(Result<ChatResponse>)> on_done,
                           Result<ChatResponse> r) {
  if (tls_reading_answer) {
    // Already on the executor, in the task that read this answer (not the caller's stack).
    tls_reading_answer = false;
    on_done(std::move(r));
    return;
  }
  callbacks_->post([cb = std::move(on_done), r = std::move(r)]() mutable { cb(std::move(r)); });
}

void Client::answer_on_executor(std::function<void(Result<ChatResponse>)>& on_done,
                                Result<ChatResponse> r) {
  tls_reading_answer = true;
  try {
    on_done(std::move(r));
  } catch (...) {
  }
  tls_reading_answer = false;
}

void Client::fail_async(Error error, std::function<void(Result<ChatResponse>)> on_done) {
  post_callback(std::move(on_done), std::move(error));
}

ProfilingReport Client::profiling(std::size_t slowest) const {
  return pipeline_->profiler() ? pipeline_->profiler()->report(slowest) : ProfilingReport{};
}

std::optional<RequestProfile> Client::request_profile(std::string_view request_id) const {
  return pipeline_->profiler() ? pipeline_->profiler()->find(request_id) : std::nullopt;
}

std::string Client::prometheus_text() const {
  const TransportStats t = transport_->stats();
  return pipeline_->metrics().prometheus_text(metrics(t), t.acquire_wait);
}

Result<HttpResponse> Client::send(const HttpRequest& request) {
  if (transport_->on_io_thread()) return called_from_callback("send()");
  auto path = check_http_request(request);  // method, headers, path; dots resolved
  if (!path) return std::move(path).error();
  HttpExchange ex;
  ex.method = request.method;
  ex.protocol = request.protocol;
  ex.url = join_url(base_url(request.protocol), *path);
  ex.body = request.body;
  ex.retry_on_status = false;
  upstream_.add_headers(ex, request.protocol, {});
  for (const auto& [name, value] : request.headers) ex.headers.push_back(name + ": " + value);
  BlockingWait<Result<HttpResult>> wait;
  transport_->lead(std::move(ex), wait.callback(), [&wait] { return wait.ready(); });
  Result<HttpResult> r = wait.get();
  if (!r) return std::move(r).error();
  HttpResponse out;
  out.status = r->status;
  out.headers = std::move(r->headers);
  out.body = std::move(r->body);
  return out;
}

Result<KeyStats> Client::key_stats(std::string_view key) const {
  if (!pipeline_->tenants()) {
    return make_error(ErrorCode::InvalidArgument,
                      "key_stats() needs a tenant key registry (APIKEYS_FILE)");
  }
  return pipeline_->tenants()->stats(key);
}

void Client::invalidate_key(std::string_view key) {
  if (pipeline_->tenants()) pipeline_->tenants()->invalidate(key);
}

// The snapshot, from the transport's counters `t` (read once by the caller).
MetricsSnapshot Client::metrics(const TransportStats& t) const {
  SnapshotSources s;
  if (const CacheStore* cache = pipeline_->cache()) {
    const LruCacheStats c = cache->stats();
    s.cache.hits = c.hits;
    s.cache.misses = c.misses;
    s.cache.stores = c.stores;
    s.cache.evictions = c.evictions;
    s.cache.expirations = c.expirations;
    s.cache.entries = c.entries;
    s.cache.bytes = c.bytes;
  }
  s.coalescing.leaders = chat_flights_.leaders() + embed_flights_.leaders();
  s.coalescing.joined = chat_flights_.joined() + embed_flights_.joined();
  const DispatchStats d = dispatcher_->stats();
  s.batches = d.queue.batches;
  s.batched_requests = d.batched_requests;
  s.upstream_calls = d.upstream_calls;
  s.queue_full = d.queue.queue_full;
  s.queued = d.queue.queued;
  s.outstanding = d.queue.outstanding;
  s.upstream_requests = d.exchanges;
  s.max_connections = config_.pool.max_connections;
  return assemble_snapshot(s, t, pipeline_->metrics(), cpu_);
}

Error Client::called_from_callback(std::string_view what) {
  return make_error(ErrorCode::InvalidArgument,
                    fmt::format("{} called on the client's I/O thread would deadlock (a "
                                "Config::callback_executor that runs its tasks inline puts "
                                "callbacks there); use complete_async()",
                                what));
}

void Client::log(LogLevel level, const std::string& message) const {
  if (config_.logger && level >= config_.log_level && config_.log_level != LogLevel::Off) {
    try {
      config_.logger(level, scrub_registered(message));  // log lines are public
    } catch (...) {
      // A throwing logger must not break the call that logged.
    }
  }
}

}  // namespace glmproxy::detail
