// ProxyClient: composition only. Requests are written by the protocol layer, carried by the
// transport, and answers parsed back by the protocol layer.

#include "glmproxy/proxy_client.hpp"

#include <fmt/format.h>

#include <atomic>
#include <future>
#include <memory>
#include <new>
#include <thread>

#include "cache/cache_key.hpp"
#include "cache/lru_cache.hpp"
#include "cache/single_flight.hpp"
#include "client/diagnostics.hpp"
#include "client/dispatcher.hpp"
#include "client/http_checks.hpp"
#include "config/variables.hpp"
#include "core/no_throw.hpp"
#include "core/secrets.hpp"
#include "glmproxy/version.hpp"
#include "keys/tenants.hpp"
#include "metrics/process_stats.hpp"
#include "metrics/profiler.hpp"
#include "metrics/registry.hpp"
#include "protocol/chat_stream.hpp"
#include "protocol/protocol.hpp"
#include "transport/transport.hpp"

namespace glmproxy {

class GLMPROXY_LOCAL ProxyClient::Impl {
 public:
  explicit Impl(Config config)
      : config_(std::move(config)), secrets_(detail::config_secrets(config_)) {}

  void fail_async(Error error, std::function<void(Result<ChatResponse>)> on_done) {
    transport_->fail(std::move(error), [cb = std::move(on_done)](Result<detail::HttpResult> r) {
      cb(std::move(r).error());
    });
  }

  Result<void> start() {
    auto transport = detail::Transport::create(config_);
    if (!transport) return std::move(transport).error();
    transport_ = std::move(*transport);
    if (!config_.keys.file.empty()) {
      auto tenants = detail::Tenants::create(config_);
      if (!tenants) return std::move(tenants).error();
      tenants_ = std::move(*tenants);
    }
    dispatcher_ = std::make_unique<detail::Dispatcher>(config_, *transport_);
    // A chat request without its own X-Request-ID sends one of four fixed header sets.
    for (Protocol p : {Protocol::OpenAI, Protocol::Anthropic}) {
      for (bool stream : {false, true}) {
        detail::HttpExchange ex;
        add_headers(ex, p, {}, stream ? "text/event-stream" : "application/json");
        ex.headers.emplace_back("Content-Type: application/json");
        chat_headers_[p == Protocol::Anthropic][stream] = detail::SharedHeaders::make(ex.headers);
      }
    }
    if (config_.cache.enabled) {
      detail::LruCacheOptions options;
      options.max_entries = config_.cache.max_entries;
      options.max_bytes = config_.cache.max_bytes;
      options.ttl = config_.cache.ttl;
      options.clock = config_.clock;
      cache_ = std::make_unique<detail::LruCache<CachedPtr>>(options);
    }
    if (config_.profiling.enabled) {
      profiler_ = std::make_unique<detail::Profiler>(config_.profiling.ring_size);
    }
    if (config_.pool.warm && config_.pool.min_connections > 0) {
      auto warmed = transport_->warm(config_.upstream.openai_base_url, config_.pool.min_connections,
                                     config_.timeouts.connect);
      if (!warmed) log(LogLevel::Warn, "pool warm-up failed: " + warmed.error().describe());
    }
    return {};
  }

  // --- the public calls, timed, counted and profiled (METRICS_ENABLED=false and
  // PROFILING_ENABLED=false: straight through) --------------------------------------------

  void complete_async(const ChatRequest& request,
                      std::function<void(Result<ChatResponse>)> on_done) {
    if (!metrics_.enabled() && !profiler_) {
      return complete_async_impl(request, std::move(on_done), nullptr);
    }
    const detail::Api api = api_of(request.protocol);
    auto trace = begin_trace(request.request_id, api, false);
    detail::Trace* raw = trace.get();
    complete_async_impl(
        request,
        [this, api, start = Clock::now(), trace = std::move(trace),
         cb = std::move(on_done)](Result<ChatResponse> r) {
          try {
            finish_call(api, start, trace.get(), r);
          } catch (...) {
            // Metrics and profiles are best effort; the answer is not.
          }
          cb(std::move(r));
        },
        raw);
  }

  Result<ChatResponse> complete(const ChatRequest& request) {
    if (!metrics_.enabled() && !profiler_) return complete_impl(request, nullptr);
    const auto start = Clock::now();
    const detail::Api api = api_of(request.protocol);
    auto trace = begin_trace(request.request_id, api, false);
    Result<ChatResponse> r = complete_impl(request, trace.get());
    finish_call(api, start, trace.get(), r);
    return r;
  }

  Result<ChatResponse> stream(const ChatRequest& request,
                              const std::function<bool(const StreamEvent&)>& on_event) {
    if (!metrics_.enabled() && !profiler_) return stream_impl(request, on_event, nullptr);
    const auto start = Clock::now();
    const detail::Api api = api_of(request.protocol);
    auto trace = begin_trace(request.request_id, api, true);
    bool first = true;
    const std::function<bool(const StreamEvent&)> timed = [&](const StreamEvent& e) {
      if (first && (e.type == StreamEvent::Type::Text || e.type == StreamEvent::Type::Reasoning)) {
        first = false;
        const auto now = Clock::now();
        if (metrics_.enabled()) {
          metrics_.time_to_first_token(
              std::chrono::duration_cast<std::chrono::microseconds>(now - start));
        }
        if (trace) trace->first_token = now;
      }
      return on_event ? on_event(e) : true;
    };
    Result<ChatResponse> r = stream_impl(request, timed, trace.get());
    finish_call(api, start, trace.get(), r);
    return r;
  }

  Result<EmbeddingResponse> embed(const EmbeddingRequest& request) {
    if (!metrics_.enabled() && !profiler_) return embed_impl(request, nullptr);
    const auto start = Clock::now();
    auto trace = begin_trace(request.request_id, detail::Api::Embeddings, false);
    Result<EmbeddingResponse> r = embed_impl(request, trace.get());
    finish_call(detail::Api::Embeddings, start, trace.get(), r);
    return r;
  }

  ProfilingReport profiling(std::size_t slowest) const {
    return profiler_ ? profiler_->report(slowest) : ProfilingReport{};
  }

  std::optional<RequestProfile> request_profile(std::string_view request_id) const {
    return profiler_ ? profiler_->find(request_id) : std::nullopt;
  }

  std::string prometheus_text() const {
    const detail::TransportStats t = transport_->stats();
    return metrics_.prometheus_text(metrics(t), t.acquire_wait);
  }

  // --- chat -------------------------------------------------------------------------------

  void complete_async_impl(const ChatRequest& request,
                           std::function<void(Result<ChatResponse>)> on_done,
                           detail::Trace* trace) {
    auto admitted = prepare_chat(request, /*stream=*/false, trace);
    if (!admitted) {
      transport_->fail(
          std::move(admitted).error(),
          [cb = std::move(on_done)](Result<detail::HttpResult> r) { cb(std::move(r).error()); });
      return;
    }
    PreparedChat& prepared = *admitted;
    if (auto hit = cached_chat(prepared)) {
      // Still on the I/O thread, as promised for every completion callback.
      transport_->post([cb = std::move(on_done), r = std::move(*hit)]() mutable { cb(r); });
      return;
    }
    if (auto written = write_body(prepared); !written) {
      transport_->fail(
          std::move(written).error(),
          [cb = std::move(on_done)](Result<detail::HttpResult> r) { cb(std::move(r).error()); });
      return;
    }
    send_chat(std::move(prepared), std::move(on_done));
  }

  Result<ChatResponse> complete_impl(const ChatRequest& request, detail::Trace* trace) {
    if (transport_->on_io_thread()) return called_from_callback("complete()");
    auto admitted = prepare_chat(request, /*stream=*/false, trace);
    if (!admitted) return std::move(admitted).error();
    PreparedChat& prepared = *admitted;
    if (auto hit = cached_chat(prepared)) return std::move(*hit);  // no thread hand-off
    if (auto written = write_body(prepared); !written) return std::move(written).error();
    // Shared, so the I/O thread never touches a promise this thread has already destroyed.
    auto promise = std::make_shared<std::promise<Result<ChatResponse>>>();
    auto future = promise->get_future();
    send_chat(std::move(prepared),
              [promise](Result<ChatResponse> r) { promise->set_value(std::move(r)); });
    return future.get();
  }

  Result<ChatResponse> stream_impl(const ChatRequest& request,
                                   const std::function<bool(const StreamEvent&)>& on_event,
                                   detail::Trace* trace) {
    if (transport_->on_io_thread()) return called_from_callback("stream()");
    auto admitted = prepare_chat(request, /*stream=*/true, trace);
    if (!admitted) return std::move(admitted).error();
    PreparedChat& prepared = *admitted;
    static const detail::StreamCallback kIgnore = [](const StreamEvent&) { return true; };
    const detail::StreamCallback& callback = on_event ? on_event : kIgnore;
    if (prepared.read_cache) {
      if (auto hit = cache_lookup(prepared.key, trace)) {
        // A cached stream is replayed event by event, on this thread.
        for (const StreamEvent& e : (*hit)->events) {
          bool go_on = false;
          try {
            go_on = callback(e);
          } catch (...) {
            return make_error(ErrorCode::Internal, "the stream's on_event callback threw");
          }
          if (!go_on) {
            return make_error(ErrorCode::Cancelled,
                              "the stream was cancelled by its on_event callback");
          }
        }
        ChatResponse out = (*hit)->chat;
        out.from_cache = true;
        return out;
      }
    }
    detail::SseLimits limits;
    limits.max_line_bytes = config_.stream.max_line_bytes;
    limits.max_event_bytes = config_.stream.max_event_bytes;
    if (auto written = write_body(prepared); !written) return std::move(written).error();
    auto sink = std::make_shared<detail::ChatStream>(request.protocol, &callback, limits,
                                                     config_.stream.max_response_bytes);
    sink->record_events(prepared.write_cache);

    detail::HttpExchange ex =
        chat_exchange(request, std::move(prepared.body), prepared.model, true, trace);
    ex.sink = sink;
    auto promise = std::make_shared<std::promise<Result<detail::HttpResult>>>();
    auto future = promise->get_future();
    detail::ChatJob job;
    job.group = "c|" + ex.url;  // streams are never merged or deduplicated
    job.exchange = std::move(ex);
    job.on_done = [promise](Result<detail::HttpResult> r) { promise->set_value(std::move(r)); };
    dispatcher_->chat(std::move(job));
    Result<detail::HttpResult> r = future.get();
    if (!r) return std::move(r).error();
    if (r->status < 200 || r->status >= 300)
      return to_chat_response(request.protocol, std::move(r));
    ChatResponse out = sink->take_response();
    out.http_status = r->status;
    out.attempts = r->attempts;
    charge(request.api_key, out.usage);
    if (prepared.write_cache) {
      auto value = std::make_shared<CachedValue>();
      value->chat = out;
      value->events = sink->take_events();
      store(prepared.key, std::move(value));
    }
    return out;
  }

  // --- embeddings -------------------------------------------------------------------------

  Result<EmbeddingResponse> embed_impl(const EmbeddingRequest& request, detail::Trace* trace) {
    if (transport_->on_io_thread()) return called_from_callback("embed()");
    if (auto ok = detail::check_request_id(request.request_id); !ok) return std::move(ok).error();
    const std::string& model =
        request.model.empty() ? config_.upstream.embedding_model : request.model;
    if (trace != nullptr) trace->model = model;
    std::vector<std::string_view> inputs(request.input.begin(), request.input.end());
    // Written once now to refuse a bad request before it waits in a batch.
    auto body =
        detail::write_embedding_request(inputs, model, request.dimensions, request.extra_json);
    if (!body) return std::move(body).error();
    if (tenants_) {
      // The key's model override is a chat model: embeddings keep their own.
      if (auto admitted = tenants_->admit(request.api_key); !admitted) {
        return std::move(admitted).error();
      }
    }
    const std::string& base = config_.upstream.openai_base_url;
    const Policy policy = policy_for(request.cache);
    detail::CacheKey key;
    if (policy.read_cache || policy.write_cache || policy.coalesce) {
      key = detail::embedding_cache_key(request, base, model, tenant_scope(request.api_key));
    }
    if (policy.read_cache) {
      if (auto hit = cache_lookup(key, trace)) {
        EmbeddingResponse out = (*hit)->embedding;
        out.from_cache = true;
        return out;
      }
    }
    auto promise = std::make_shared<std::promise<Result<EmbeddingResponse>>>();
    auto future = promise->get_future();
    std::function<void(Result<EmbeddingResponse>)> deliver =
        [promise](Result<EmbeddingResponse> r) { promise->set_value(std::move(r)); };
    if (policy.coalesce && !embed_flights_.lead_or_join(key, std::move(deliver))) {
      if (trace != nullptr) trace->coalesced = true;
      return future.get();  // an identical request is in flight: its answer is ours
    }
    detail::EmbeddingJob job;
    if (policy.coalesce || policy.read_cache) job.identity = key;
    job.exchange.method = "POST";
    job.exchange.protocol = Protocol::OpenAI;
    job.exchange.url = detail::join_url(base, "embeddings");
    job.exchange.model = model;
    add_headers(job.exchange, Protocol::OpenAI, {});
    job.exchange.headers.emplace_back("Content-Type: application/json");
    job.exchange.keep_all_headers = false;
    if (trace != nullptr)
      job.exchange.marks = trace->transfer = std::make_shared<detail::TransferMarks>();
    job.model = model;
    job.dimensions = request.dimensions;
    job.extra_json = detail::canonical_json(request.extra_json);
    job.inputs = request.input;
    // Charged by the dispatcher, once per input sent: a request merged with an identical one in
    // its batch shares that one's answer and costs nothing, like a coalesced request.
    job.charge = [this, tenant = request.api_key](const Usage& usage) { charge(tenant, usage); };
    job.on_done = [this, key, policy, deliver](Result<EmbeddingResponse> r) mutable {
      try {
        if (r && policy.write_cache) {
          auto value = std::make_shared<CachedValue>();
          value->embedding = *r;
          store(key, std::move(value));
        }
      } catch (...) {
        // Usage and the cache are best effort here; the answer still goes to every caller.
      }
      if (policy.coalesce) {
        embed_flights_.finish(key, std::move(r));
      } else {
        deliver(std::move(r));
      }
    };
    dispatcher_->embed(std::move(job));
    return future.get();
  }

  // --- raw pass-through -------------------------------------------------------------------

  Result<HttpResponse> send(const HttpRequest& request) {
    if (transport_->on_io_thread()) return called_from_callback("send()");
    auto path = detail::check_http_request(request);  // method, headers, path; dots resolved
    if (!path) return std::move(path).error();
    detail::HttpExchange ex;
    ex.method = request.method;
    ex.protocol = request.protocol;
    ex.url = detail::join_url(base_url(request.protocol), *path);
    ex.body = request.body;
    ex.retry_on_status = false;
    add_headers(ex, request.protocol, {});
    for (const auto& [name, value] : request.headers) ex.headers.push_back(name + ": " + value);
    auto promise = std::make_shared<std::promise<Result<detail::HttpResult>>>();
    auto future = promise->get_future();
    transport_->submit(std::move(ex), [promise](Result<detail::HttpResult> r) {
      promise->set_value(std::move(r));
    });
    Result<detail::HttpResult> r = future.get();
    if (!r) return std::move(r).error();
    HttpResponse out;
    out.status = r->status;
    out.headers = std::move(r->headers);
    out.body = std::move(r->body);
    return out;
  }

  const Config& config() const noexcept { return config_; }

  Result<KeyStats> key_stats(std::string_view key) const {
    if (!tenants_) {
      return make_error(ErrorCode::InvalidArgument,
                        "key_stats() needs a tenant key registry (APIKEYS_FILE)");
    }
    return tenants_->stats(key);
  }

  void invalidate_key(std::string_view key) {
    if (tenants_) tenants_->invalidate(key);
  }

  std::uint64_t key_file_reads() const noexcept { return tenants_ ? tenants_->file_reads() : 0; }
  std::uint64_t key_file_writes() const noexcept { return tenants_ ? tenants_->file_writes() : 0; }
  ClientDiagnostics diagnostics() const noexcept {
    return detail::diagnostics_of(transport_->stats(), key_file_reads(), key_file_writes());
  }

  MetricsSnapshot metrics() const { return metrics(transport_->stats()); }

  // The snapshot, from the transport's counters `t` (read once by the caller).
  MetricsSnapshot metrics(const detail::TransportStats& t) const {
    MetricsSnapshot m;
    if (cache_) {
      const detail::LruCacheStats c = cache_->stats();
      m.cache.hits = c.hits;
      m.cache.misses = c.misses;
      m.cache.stores = c.stores;
      m.cache.evictions = c.evictions;
      m.cache.expirations = c.expirations;
      m.cache.entries = c.entries;
      m.cache.bytes = c.bytes;
    }
    m.coalescing.leaders = chat_flights_.leaders() + embed_flights_.leaders();
    m.coalescing.joined = chat_flights_.joined() + embed_flights_.joined();
    const detail::DispatchStats d = dispatcher_->stats();
    m.batching.batches = d.queue.batches;
    m.batching.batched_requests = d.batched_requests;
    m.batching.upstream_calls = d.upstream_calls;
    m.batching.calls_saved =
        d.batched_requests > d.upstream_calls ? d.batched_requests - d.upstream_calls : 0;
    m.batching.queue_full = d.queue.queue_full;
    m.batching.queued = d.queue.queued;
    m.batching.outstanding = d.queue.outstanding;
    m.batching.mean_batch_size = d.queue.batches == 0 ? 0.0
                                                      : static_cast<double>(d.batched_requests) /
                                                            static_cast<double>(d.queue.batches);
    m.buffers.hits = t.buffers.hits();
    m.buffers.misses = t.buffers.misses();
    m.buffers.in_use = t.buffers.in_use();
    m.upstream_requests = d.exchanges;
    const auto recent = metrics_.recent();
    auto& w = m.window;
    w.seconds = std::chrono::duration<double>(metrics_.window()).count();
    w.requests = recent.latency.count;
    w.errors = recent.errors;
    w.cache_hits = recent.cache_hits;
    if (w.requests > 0) {
      const auto n = static_cast<double>(w.requests);
      w.requests_per_second = n / w.seconds;
      w.error_rate = static_cast<double>(w.errors) / n;
      w.cache_hit_rate = static_cast<double>(w.cache_hits) / n;
      w.p50_ms = static_cast<double>(recent.latency.quantile_us(0.50)) / 1000.0;
      w.p95_ms = static_cast<double>(recent.latency.quantile_us(0.95)) / 1000.0;
      w.p99_ms = static_cast<double>(recent.latency.quantile_us(0.99)) / 1000.0;
    }
    metrics_.fill(m);
    auto& pool = m.pool;
    pool.max_connections = config_.pool.max_connections;
    pool.in_use = t.in_flight;
    pool.open = t.open_connections;
    pool.idle = std::max(0, t.open_connections - t.in_flight - t.reading_out);
    pool.waiting = t.waiting;
    pool.connections_opened = t.connections_opened;
    pool.utilisation =
        static_cast<double>(t.in_flight) / static_cast<double>(config_.pool.max_connections);
    pool.acquired = t.acquire_wait.count;
    if (t.acquire_wait.count > 0) {
      pool.acquire_wait_avg_ms = static_cast<double>(t.acquire_wait.sum_us) /
                                 static_cast<double>(t.acquire_wait.count) / 1000.0;
      pool.acquire_wait_p99_ms = static_cast<double>(t.acquire_wait.quantile_us(0.99)) / 1000.0;
    }
    m.upstream.attempts = t.attempts;
    m.upstream.retries = t.retries;
    m.upstream.tls_handshakes = t.tls_handshakes;
    m.upstream.bytes_sent = t.bytes_sent;
    m.upstream.bytes_received = t.bytes_received;
    m.admission.concurrency_decreases = t.concurrency_decreases;
    m.admission.breaker_opened = t.breaker_opened;
    m.admission.breaker_rejections = t.breaker_rejections;
    m.admission.model_concurrency_max = t.model_concurrency_max;
    m.admission.model_limits = t.model_limits;
    const detail::ProcessSample process = detail::sample_process();
    const detail::CpuMeter::Reading cpu = cpu_.read(process);
    m.process.rss_bytes = process.rss_bytes;
    m.process.peak_rss_bytes = process.peak_rss_bytes;
    m.process.cpu_seconds = process.cpu_seconds;
    m.process.cpu_percent = cpu.percent;
    m.process.cpu_interval_seconds = cpu.interval_seconds;
    return m;
  }

  // A client destroyed (or assigned over) from one of its own callbacks is on its own I/O
  // thread, which cannot join itself: the shutdown is handed to a short-lived thread and the
  // destructor returns at once; pending requests are answered as usual, on the I/O thread. Only
  // when no thread can be started is the client left running, rather than the process ended.
  bool on_io_thread() const noexcept { return transport_ && transport_->on_io_thread(); }
  static void retire(std::unique_ptr<Impl> impl) noexcept {
    if (!impl || !impl->on_io_thread()) return impl.reset();
    Impl* const raw = impl.release();  // a failed thread start must not destroy it here
    try {
      std::thread([raw]() noexcept { delete raw; }).detach();
    } catch (...) {
      // No thread: left running (its memory is not given back) rather than the process ended.
    }
  }

  // Every pending request is answered on the I/O thread, never on the destroying one: the
  // batching queue hands what waits in it to the transport, whose I/O thread then resolves
  // everything and ends. Both stay alive meanwhile, so a callback that sends again (a retry
  // loop) is answered too, on the I/O thread, instead of finding them gone.
  ~Impl() {
    if (dispatcher_) dispatcher_->stop();  // (null when create() failed before making them)
    if (transport_) transport_->stop();
    dispatcher_.reset();
    transport_.reset();
    tenants_.reset();  // after every answer was charged: writes the last usage
  }

 private:
  struct CachedValue {
    ChatResponse chat;
    std::vector<StreamEvent> events;  // streamed answers: replayed through on_event
    EmbeddingResponse embedding;
  };
  using CachedPtr = std::shared_ptr<const CachedValue>;

  // Whose answer a request gets: its tenant's with a key registry; without one `api_key` is
  // ignored (docs/tenants.md), by the cache and coalescing too.
  std::string_view tenant_scope(const std::string& api_key) const noexcept {
    return tenants_ ? std::string_view(api_key) : std::string_view();
  }

  // Adds upstream-reported tokens to a tenant's quota and usage file (no registry: nothing).
  void charge(const std::string& tenant, const Usage& usage) {
    metrics_.tokens(usage.prompt_tokens, usage.completion_tokens);
    if (tenants_) tenants_->record_usage(tenant, usage.total_tokens);
  }

  using Clock = std::chrono::steady_clock;

  static detail::Api api_of(Protocol p) noexcept {
    return p == Protocol::Anthropic ? detail::Api::Anthropic : detail::Api::OpenAI;
  }

  // A public call ended: its metrics and, with PROFILING_ENABLED, its profile.
  template <class R>
  void finish_call(detail::Api api, Clock::time_point start, detail::Trace* trace,
                   const Result<R>& r) {
    const detail::Outcome outcome =
        !r ? detail::Outcome::Error
           : (r->from_cache ? detail::Outcome::CacheHit : detail::Outcome::Ok);
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
    profiler_->finish(*trace, detail::outcome_name(outcome), code, status);
  }

  // PROFILING_ENABLED: a trace per request (nullptr otherwise).
  std::shared_ptr<detail::Trace> begin_trace(std::string_view request_id, detail::Api api,
                                             bool stream) {
    if (!profiler_) return nullptr;
    auto trace = profiler_->begin(request_id, detail::api_name(api));
    trace->stream = stream;
    return trace;
  }

  // What a request's CachePolicy means with this client's configuration.
  struct Policy {
    bool read_cache = false, write_cache = false, coalesce = false;
  };
  Policy policy_for(CachePolicy p) const {
    Policy out;
    out.read_cache = cache_ && p == CachePolicy::Default;
    out.write_cache = cache_ && p != CachePolicy::Bypass;
    out.coalesce = config_.cache.coalesce && p == CachePolicy::Default;
    return out;
  }

  struct PreparedChat {
    const ChatRequest* request;
    std::string model;  // effective: the tenant key's override, the request's, or the default
    bool stream;
    detail::CacheKey key;
    bool read_cache, write_cache, coalesce;
    std::string body;                // written by write_body(), after the cache missed
    detail::Trace* trace = nullptr;  // PROFILING_ENABLED
  };

  // Tenant key and quota first (with a key registry), then the cache key: a cache hit needs
  // neither the request body nor a thread hand-off. (An invalid request cannot hit: only
  // answers to valid ones are stored.)
  Result<PreparedChat> prepare_chat(const ChatRequest& request, bool stream, detail::Trace* trace) {
    if (auto ok = detail::check_request_id(request.request_id); !ok) return std::move(ok).error();
    std::string model = request.model.empty() ? config_.upstream.default_model : request.model;
    if (tenants_) {
      auto override_model = tenants_->admit(request.api_key);
      if (!override_model) return std::move(override_model).error();
      if (!override_model->empty()) model = std::move(*override_model);
    }
    if (trace != nullptr) trace->model = model;
    const Policy policy = policy_for(request.cache);
    PreparedChat p{&request,
                   std::move(model),
                   stream,
                   {},
                   policy.read_cache,
                   policy.write_cache,
                   policy.coalesce && !stream,  // streams are not coalesced
                   {},
                   trace};
    if (p.read_cache || p.write_cache || p.coalesce) {
      p.key = detail::chat_cache_key(request, base_url(request.protocol), p.model, stream,
                                     tenant_scope(request.api_key));
    }
    return p;
  }

  static Result<void> write_body(PreparedChat& p) {
    auto body = detail::write_chat_request(*p.request, p.model, p.stream);
    if (!body) return std::move(body).error();
    p.body = std::move(*body);
    return {};
  }

  std::optional<CachedPtr> cache_lookup(const detail::CacheKey& key, detail::Trace* trace) {
    if (!cache_) return std::nullopt;
    auto hit = cache_->get(key);
    if (trace != nullptr) trace->cache = Clock::now();
    return hit;
  }

  std::optional<ChatResponse> cached_chat(const PreparedChat& p) {
    if (!p.read_cache) return std::nullopt;
    auto hit = cache_lookup(p.key, p.trace);
    if (!hit) return std::nullopt;
    ChatResponse out = (*hit)->chat;
    out.from_cache = true;
    return out;
  }

  static std::size_t size_of(const ChatResponse& r) {
    std::size_t n = sizeof(ChatResponse) + r.id.size() + r.model.size() + r.content.size() +
                    r.finish_reason.size() + r.reasoning_content.size() + r.raw_json.size();
    for (const ToolCall& t : r.tool_calls) {
      n += sizeof(ToolCall) + t.id.size() + t.name.size() + t.arguments_json.size();
    }
    return n;
  }

  void store(const detail::CacheKey& key, std::shared_ptr<CachedValue> value) {
    if (!cache_) return;
    std::size_t bytes = sizeof(CachedValue) + size_of(value->chat);
    for (const StreamEvent& e : value->events) {
      bytes += sizeof(StreamEvent) + e.text.size() + e.tool_call_id.size() + e.tool_name.size();
    }
    for (const auto& v : value->embedding.embeddings) bytes += v.size() * sizeof(float) + 24;
    cache_->put(key, CachedPtr(std::move(value)), bytes);
  }

  // After the cache missed: join an identical request in flight, or send (through the batching
  // queue when it is on). `on_done` runs on the I/O thread, exactly once.
  void send_chat(PreparedChat p, std::function<void(Result<ChatResponse>)> on_done) {
    const ChatRequest& request = *p.request;
    if (p.coalesce) {
      // Marked before joining: a joined request may be answered (on the I/O thread) before
      // lead_or_join returns here.
      if (p.trace != nullptr) p.trace->coalesced = true;
      if (!chat_flights_.lead_or_join(p.key, on_done)) return;
      if (p.trace != nullptr) p.trace->coalesced = false;
    }
    detail::ChatJob job;
    job.exchange = chat_exchange(request, std::move(p.body), p.model, false, p.trace);
    if (p.coalesce) job.identity = p.key;
    const Protocol protocol = request.protocol;
    job.on_done = [this, protocol, key = p.key, write = p.write_cache, coalesce = p.coalesce,
                   tenant = request.api_key,
                   cb = std::move(on_done)](Result<detail::HttpResult> r) mutable {
      Result<ChatResponse> reply = make_error(ErrorCode::Internal, "out of memory");
      try {
        reply = to_chat_response(protocol, std::move(r));
        if (reply) charge(tenant, reply->usage);  // once per upstream call
        if (reply && write) {
          auto value = std::make_shared<CachedValue>();
          value->chat = *reply;
          store(key, std::move(value));
        }
      } catch (...) {
        // Whatever failed (out of memory parsing a large body), the callers are answered.
        reply = detail::exception_error({"glmproxy: reading the chat answer"});
      }
      if (coalesce) {
        chat_flights_.finish(key, std::move(reply));  // the leader's own cb is among them
      } else {
        cb(std::move(reply));
      }
    };
    dispatcher_->chat(std::move(job));
  }

  detail::HttpExchange chat_exchange(const ChatRequest& request, std::string body,
                                     const std::string& model, bool stream, detail::Trace* trace) {
    detail::HttpExchange ex;
    if (trace != nullptr) ex.marks = trace->transfer = std::make_shared<detail::TransferMarks>();
    ex.method = "POST";
    ex.model = model;
    ex.protocol = request.protocol;
    ex.url = detail::join_url(base_url(request.protocol), detail::chat_path(request.protocol));
    ex.body = std::move(body);
    ex.keep_all_headers = false;
    if (request.request_id.empty()) {
      ex.shared_headers = chat_headers_[request.protocol == Protocol::Anthropic][stream];
      return ex;
    }
    add_headers(ex, request.protocol, request.request_id,
                stream ? "text/event-stream" : "application/json");
    ex.headers.emplace_back("Content-Type: application/json");
    return ex;
  }

  static Error called_from_callback(std::string_view what) {
    return make_error(ErrorCode::InvalidArgument,
                      fmt::format("{} called on the client's I/O thread (from a completion "
                                  "callback) would deadlock; use complete_async()",
                                  what));
  }

  const std::string& base_url(Protocol p) const {
    return p == Protocol::Anthropic ? config_.upstream.anthropic_base_url
                                    : config_.upstream.openai_base_url;
  }

  void add_headers(detail::HttpExchange& ex, Protocol p, const std::string& request_id,
                   std::string_view accept = "application/json") const {
    const std::string& key = config_.upstream.api_key;
    if (p == Protocol::Anthropic) {
      if (!key.empty()) ex.headers.push_back("x-api-key: " + key);
      ex.headers.push_back("anthropic-version: " + config_.upstream.anthropic_version);
    } else if (!key.empty()) {
      ex.headers.push_back("Authorization: Bearer " + key);
    }
    ex.headers.push_back(fmt::format("Accept: {}", accept));
    ex.headers.emplace_back(std::string("User-Agent: glmproxy/") + kVersionString);
    // check_request_id() has refused ids that cannot be a header value.
    if (!request_id.empty()) ex.headers.push_back("X-Request-ID: " + request_id);
  }

  static Result<ChatResponse> to_chat_response(Protocol protocol, Result<detail::HttpResult> r) {
    if (!r) return std::move(r).error();
    detail::HttpResult& http = *r;
    if (http.status < 200 || http.status >= 300) {
      return detail::map_error_response(
          protocol, http.status, http.body, detail::find_header(http.headers, "retry-after"),
          detail::find_header(http.headers, "retry-after-ms"), std::chrono::system_clock::now());
    }
    auto parsed = detail::parse_chat_response(protocol, http.body);
    if (!parsed) {
      Error e = std::move(parsed).error();
      if (e.http_status == 0) e.http_status = http.status;
      return e;
    }
    parsed->http_status = http.status;
    parsed->attempts = http.attempts;
    return parsed;
  }

  void log(LogLevel level, const std::string& message) const {
    if (config_.logger && level >= config_.log_level && config_.log_level != LogLevel::Off) {
      try {
        config_.logger(level, detail::scrub_registered(message));  // log lines are public
      } catch (...) {
        // A throwing logger must not break the call that logged.
      }
    }
  }

  Config config_;
  detail::SecretScope secrets_;  // the upstream key, admin token, URL passwords: scrubbed
  detail::Metrics metrics_{config_.metrics.enabled, config_.metrics.retention,
                           config_.metrics.aggregation_interval, config_.clock};
  std::unique_ptr<detail::Tenants> tenants_;  // with APIKEYS_FILE
  std::unique_ptr<detail::Transport> transport_;
  std::unique_ptr<detail::Dispatcher> dispatcher_;
  std::unique_ptr<detail::LruCache<CachedPtr>> cache_;  // when CACHE_ENABLED
  std::unique_ptr<detail::Profiler> profiler_;          // when PROFILING_ENABLED
  // [anthropic][stream]: the constant headers of chat requests.
  std::shared_ptr<const detail::SharedHeaders> chat_headers_[2][2];
  mutable detail::CpuMeter cpu_{config_.metrics.aggregation_interval};
  detail::SingleFlight<Result<ChatResponse>> chat_flights_;
  detail::SingleFlight<Result<EmbeddingResponse>> embed_flights_;
};

namespace {

Error moved_from() {
  return make_error(ErrorCode::InvalidArgument, "this ProxyClient was moved from");
}

// What leaves the library is public: every registered secret (the upstream key, tenant keys,
// the admin token, URL passwords) is scrubbed from an Error, and so is the caller's own tenant
// key, even when it is unknown to the registry (an upstream may echo any of them).
void scrub(Error& e, std::string_view tenant_key) noexcept {
  detail::SecretRegistry::instance().scrub(e.message);
  detail::SecretRegistry::instance().scrub(e.upstream_code);
  if (tenant_key.size() > 4) {
    try {
      e.message = detail::scrub_secret(std::move(e.message), tenant_key);
      e.upstream_code = detail::scrub_secret(std::move(e.upstream_code), tenant_key);
    } catch (...) {
      e.message = "(message withheld: it could not be checked for secrets)";
      e.upstream_code.clear();
    }
  }
}

template <class T>
Result<T> scrubbed(Result<T> r, std::string_view tenant_key) noexcept {
  if (r) return r;
  Error e = std::move(r).error();
  scrub(e, tenant_key);
  return e;
}

// The error for an exception that reached the public boundary (nothing may pass it); call it
// in a catch block only. Never throws ("out of memory" when not even the message fits).
Error exception_error(std::string_view call) noexcept {
  return detail::exception_error({"glmproxy: ", call});
}

}  // namespace

Result<ProxyClient> ProxyClient::create(Config config) {
  try {
    if (auto valid = config.validate(); !valid) return std::move(valid).error();
    auto impl = std::make_unique<Impl>(std::move(config));
    if (auto started = impl->start(); !started) {
      Error e = std::move(started).error();
      scrub(e, {});  // while the client's secrets are still registered
      return e;
    }
    return ProxyClient(std::move(impl));
  } catch (...) {
    return exception_error("ProxyClient::create()");
  }
}

ProxyClient::ProxyClient(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
ProxyClient::ProxyClient(ProxyClient&&) noexcept = default;
ProxyClient& ProxyClient::operator=(ProxyClient&& other) noexcept {
  if (this != &other) {
    std::unique_ptr<Impl> old = std::move(impl_);
    impl_ = std::move(other.impl_);
    Impl::retire(std::move(old));
  }
  return *this;
}
ProxyClient::~ProxyClient() {
  // Otherwise impl_ is destroyed in place, still set meanwhile: a callback that sends again
  // while the client shuts down reaches it (and is answered ShuttingDown), not a moved-from one.
  if (impl_ && impl_->on_io_thread()) Impl::retire(std::move(impl_));
}

Result<ChatResponse> ProxyClient::complete(const ChatRequest& request) {
  if (!impl_) return moved_from();
  try {
    return scrubbed(impl_->complete(request), request.api_key);
  } catch (...) {
    return exception_error("complete()");
  }
}

void ProxyClient::complete_async(ChatRequest request,
                                 std::function<void(Result<ChatResponse>)> on_done) {
  // Exactly once, whatever happens: the first of the answer and a boundary error wins.
  struct Once {
    std::function<void(Result<ChatResponse>)> callback;
    std::string tenant_key;
    std::atomic<bool> fired{false};
  };
  std::shared_ptr<Once> once;
  try {
    once = std::make_shared<Once>();
    once->callback = std::move(on_done);
    once->tenant_key = request.api_key;
  } catch (...) {
    if (on_done) {
      try {
        on_done(exception_error("complete_async()"));
      } catch (...) {
      }
    }
    return;
  }
  auto deliver = [once](Result<ChatResponse> r) {
    if (once->fired.exchange(true)) return;
    if (!once->callback) return;
    once->callback(scrubbed(std::move(r), once->tenant_key));  // throws are caught by the caller
  };
  if (!impl_) {
    // No I/O thread to answer on: a thread of its own, so that the callback still does not run
    // on the caller's stack (only if none can be started, here).
    try {
      std::thread([deliver] {
        try {
          deliver(moved_from());
        } catch (...) {
        }
      }).detach();
    } catch (...) {
      try {
        deliver(moved_from());
      } catch (...) {
      }
    }
    return;
  }
  try {
    impl_->complete_async(request, deliver);
  } catch (...) {
    Error e = exception_error("complete_async()");
    try {
      impl_->fail_async(e, deliver);  // on the I/O thread, as every other answer
    } catch (...) {
      try {
        deliver(std::move(e));
      } catch (...) {
      }
    }
  }
}

Result<ChatResponse> ProxyClient::stream(const ChatRequest& request,
                                         const std::function<bool(const StreamEvent&)>& on_event) {
  if (!impl_) return moved_from();
  try {
    return scrubbed(impl_->stream(request, on_event), request.api_key);
  } catch (...) {
    return exception_error("stream()");
  }
}

Result<EmbeddingResponse> ProxyClient::embed(const EmbeddingRequest& request) {
  if (!impl_) return moved_from();
  try {
    return scrubbed(impl_->embed(request), request.api_key);
  } catch (...) {
    return exception_error("embed()");
  }
}

MetricsSnapshot ProxyClient::metrics() const {
  try {
    return impl_ ? impl_->metrics() : MetricsSnapshot{};
  } catch (...) {
    return MetricsSnapshot{};
  }
}

ProfilingReport ProxyClient::profiling(std::size_t slowest) const {
  try {
    return impl_ ? impl_->profiling(slowest) : ProfilingReport{};
  } catch (...) {
    return ProfilingReport{};
  }
}

std::optional<RequestProfile> ProxyClient::request_profile(std::string_view request_id) const {
  try {
    return impl_ ? impl_->request_profile(request_id) : std::nullopt;
  } catch (...) {
    return std::nullopt;
  }
}

std::string ProxyClient::prometheus_text() const {
  try {
    return impl_ ? impl_->prometheus_text() : std::string();
  } catch (...) {
    return std::string();
  }
}

Result<KeyStats> ProxyClient::key_stats(std::string_view tenant_key) const {
  if (!impl_) return moved_from();
  try {
    return scrubbed(impl_->key_stats(tenant_key), tenant_key);
  } catch (...) {
    return exception_error("key_stats()");
  }
}

void ProxyClient::invalidate_key(std::string_view tenant_key) {
  try {
    if (impl_) impl_->invalidate_key(tenant_key);
  } catch (...) {
  }
}

Result<HttpResponse> ProxyClient::send(const HttpRequest& request) {
  if (!impl_) return moved_from();
  try {
    return scrubbed(impl_->send(request), {});
  } catch (...) {
    return exception_error("send()");
  }
}

ClientDiagnostics ProxyClient::diagnostics() const noexcept {
  return impl_ ? impl_->diagnostics() : ClientDiagnostics{};
}

const Config& ProxyClient::config() const noexcept {
  static const Config kEmpty;
  return impl_ ? impl_->config() : kEmpty;
}

}  // namespace glmproxy
