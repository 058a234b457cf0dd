// The driver's submissions and wake-ups, shutdown and warm-up, and the public Transport around
// it (docs/transport.md, Threads and Shutdown); the loop itself is in driving.cpp.

#include "transport/transport.hpp"

#include <fmt/format.h>
#include <pthread.h>

#include <algorithm>
#include <csignal>
#include <future>
#include <optional>

#include "transport/driver.hpp"
#include "transport/easy_setup.hpp"
#include "transport/proxy_options.hpp"

namespace glmproxy::detail {

namespace {

using Clock = std::chrono::steady_clock;

Error shutting_down() { return make_error(ErrorCode::ShuttingDown, "the client is shutting down"); }

}  // namespace

Transport::Impl::Impl(const Config& config)
    : config_(config),
      admission_(config),
      rng_(std::random_device{}()),
      keep_alive_(config.pool, config.timeouts.total),
      pool_(config.stream.buffer_pool_enabled,
            static_cast<std::size_t>(std::max(16, 2 * config.pool.max_connections))) {
  env_.request_chunk_size = config.stream.request_chunk_size;
  env_.max_response_bytes = config.stream.max_response_bytes;
  env_.streams = this;
}

Transport::Impl::~Impl() {
  stop();
  for (CURL* e : free_easy_) curl_easy_cleanup(e);
  if (multi_ != nullptr) curl_multi_cleanup(multi_);
  if (share_ != nullptr) curl_share_cleanup(share_);
}

TransportStats Transport::Impl::stats() const noexcept {
  TransportStats s;
  s.buffers = pool_.stats();
  s.upload_reads = env_.upload_reads.load(std::memory_order_relaxed);
  s.body_reads = env_.body_reads.load(std::memory_order_relaxed);
  s.loop_turns = loop_turns_.load(std::memory_order_relaxed);
  s.wakeups = wakeups_.load(std::memory_order_relaxed);
  s.easy_handles_created = easy_created_.load(std::memory_order_relaxed);
  s.streams_cancelled = streams_cancelled_.load(std::memory_order_relaxed);
  s.cancelled_connections_kept = drained_kept_.load(std::memory_order_relaxed);
  AdmissionStats a = admission_.stats();
  s.concurrency_decreases = a.concurrency_decreases;
  s.breaker_opened = a.breaker_opened;
  s.breaker_rejections = a.breaker_rejections;
  s.model_concurrency_max = a.model_concurrency_max;
  s.model_limits = std::move(a.model_limits);
  s.in_flight = in_flight_now_.load(std::memory_order_relaxed);
  s.reading_out = reading_out_now_.load(std::memory_order_relaxed);
  s.waiting = waiting_now_.load(std::memory_order_relaxed);
  s.open_connections = wire_.open_sockets.load(std::memory_order_relaxed);
  s.connections_opened = wire_.sockets_opened.load(std::memory_order_relaxed);
  s.tls_handshakes = wire_.tls_handshakes.load(std::memory_order_relaxed);
  s.attempts = attempts_.load(std::memory_order_relaxed);
  s.retries = retries_.load(std::memory_order_relaxed);
  s.bytes_sent = wire_.bytes_sent.load(std::memory_order_relaxed);
  s.bytes_received = wire_.bytes_received.load(std::memory_order_relaxed);
  s.acquire_wait = acquire_wait_.snapshot();
  return s;
}

// The I/O thread resolves everything still queued or in flight, then ends. Idempotent.
void Transport::Impl::stop() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  park_cv_.notify_one();
  // A driver in its poll (the I/O thread, or a leading caller, who then hands the loop back).
  if (multi_ != nullptr) curl_multi_wakeup(multi_);
  if (thread_.joinable()) thread_.join();
}

void Transport::Impl::poke() noexcept {
  poked_.store(true, std::memory_order_release);
  if (multi_ != nullptr) curl_multi_wakeup(multi_);
}

Result<void> Transport::Impl::start() {
  if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
    return make_error(ErrorCode::Internal, "curl_global_init failed");
  }
  multi_ = curl_multi_init();
  share_ = curl_share_init();
  if (multi_ == nullptr || share_ == nullptr) {
    return make_error(ErrorCode::Internal, "could not create libcurl multi/share handles");
  }
  // DNS answers and TLS sessions are shared by every handle (all on the I/O thread).
  for (curl_lock_data data : {CURL_LOCK_DATA_DNS, CURL_LOCK_DATA_SSL_SESSION}) {
    if (const CURLSHcode rc = curl_share_setopt(share_, CURLSHOPT_SHARE, data); rc != CURLSHE_OK) {
      return make_error(ErrorCode::Internal,
                        fmt::format("libcurl refused to share {}: {}",
                                    data == CURL_LOCK_DATA_DNS ? "DNS answers" : "TLS sessions",
                                    curl_share_strerror(rc)));
    }
  }
  // A CA or proxy option this libcurl refuses fails create(), not every request.
  if (CURL* probe = curl_easy_init(); probe != nullptr) {
    const CURLcode rc = set_tls_options(probe, config_.upstream);
    const CURLcode proxy = set_proxy_options(probe, config_.upstream);
    curl_easy_cleanup(probe);
    if (rc != CURLE_OK) return tls_options_error(rc);
    if (proxy != CURLE_OK) return proxy_options_error(config_.upstream, proxy);
  }
  const long max_conns = config_.pool.max_connections;
  // Idle connections kept for reuse; curl closes them once older than the max idle age.
  const std::pair<CURLMoption, long> options[] = {
      {CURLMOPT_MAX_TOTAL_CONNECTIONS, max_conns},
      {CURLMOPT_MAX_HOST_CONNECTIONS, max_conns},
      {CURLMOPT_MAXCONNECTS, std::max<long>(max_conns, config_.pool.min_connections)},
  };
  for (const auto& [option, value] : options) {
    if (const CURLMcode rc = curl_multi_setopt(multi_, option, value); rc != CURLM_OK) {
      return make_error(ErrorCode::Internal,
                        fmt::format("libcurl refused the connection limits ({}): {}",
                                    static_cast<int>(option), curl_multi_strerror(rc)));
    }
  }
  // The I/O thread blocks SIGPIPE from its first instruction: it inherits the mask set here.
  sigset_t pipe, saved;
  sigemptyset(&pipe);
  sigaddset(&pipe, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &pipe, &saved);
  try {
    thread_ = std::thread([this] { run(); });
  } catch (...) {
    pthread_sigmask(SIG_SETMASK, &saved, nullptr);
    return make_error(ErrorCode::Internal, "could not start the I/O thread");
  }
  pthread_sigmask(SIG_SETMASK, &saved, nullptr);
  pthread_setname_np(thread_.native_handle(), "glmproxy-io");  // for debuggers and top
  return {};
}

void Transport::Impl::submit(std::vector<Submission> work) {
  if (on_io_thread()) {
    // From a callback on the driver (e.g. complete_async() sending the next request): no lock
    // and no wake-up; the loop takes them before it polls again.
    for (auto& w : work) local_.push_back(std::move(w));
    return;
  }
  enqueue(work, /*take=*/false);
}

// Puts `work` on the queue and wakes the driver only if it sleeps: the parked I/O thread when
// nobody drives the loop, else a driver asleep in its poll (a system call and a poll round); a
// busy driver takes the queue before it sleeps again. With `take`, an undriven loop is taken
// by this thread instead of waking anyone. While stopping, `work` is answered here, as no
// driver will.
Transport::Impl::Queued Transport::Impl::enqueue(std::vector<Submission>& work, bool take) {
  bool poll_wake = false, park_wake = false, taken = false;
  {
    std::lock_guard lock(mu_);
    if (!stopping_) {
      for (auto& w : work) incoming_.push_back(std::move(w));
      work.clear();
      if (!driven_) {
        taken = take;
        driven_ = driven_ || take;
        park_wake = !take;
      } else {
        poll_wake = sleeping_;
        sleeping_ = false;
      }
    }
  }
  if (!work.empty()) {
    answer_shutting_down(work);
    return Queued::Answered;
  }
  if (park_wake || poll_wake) wakeups_.fetch_add(1, std::memory_order_relaxed);
  if (park_wake) park_cv_.notify_one();
  if (poll_wake) curl_multi_wakeup(multi_);
  return taken ? Queued::Taken : Queued::Queued;
}

// The configured base URL `url` was built from (the Anthropic one, or else the OpenAI one).
const std::string& Transport::Impl::base_of(const std::string& url) const noexcept {
  const std::string& anthropic = config_.upstream.anthropic_base_url;
  std::string_view prefix(anthropic);
  prefix = prefix.substr(0, prefix.find('?'));
  while (!prefix.empty() && prefix.back() == '/') prefix.remove_suffix(1);
  if (!prefix.empty() && std::string_view(url).starts_with(prefix)) return anthropic;
  return config_.upstream.openai_base_url;
}

// Takes submissions in: tasks and preset errors are run and answered at once, transfers queue
// for admission.
void Transport::Impl::accept(std::vector<Submission>& work, Clock::time_point now) {
  for (auto& w : work) {
    if (auto* task = std::get_if<PostedTask>(&w)) {
      run_task(task->task);
    } else if (auto* failure = std::get_if<PresetFailure>(&w)) {
      answer(failure->on_done, Result<HttpResult>(std::move(failure->error)));
    } else {
      TransferPtr& t = std::get<TransferPtr>(w);
      t->deadline = now + t->total_timeout.value_or(config_.timeouts.total);
      admission_.push(std::move(t), now);
      keep_alive_.on_activity(now);
    }
  }
  work.clear();
}

void Transport::Impl::answer_shutting_down(std::vector<Submission>& work) {
  for (auto& w : work) {
    if (auto* task = std::get_if<PostedTask>(&w)) {
      run_task(task->task);
    } else if (auto* failure = std::get_if<PresetFailure>(&w)) {
      answer(failure->on_done, Result<HttpResult>(shutting_down()));
    } else {
      resolve(*std::get<TransferPtr>(w), shutting_down());
    }
  }
  work.clear();
}

void Transport::Impl::shutdown() {
  std::vector<Submission> rest;
  {
    std::lock_guard lock(mu_);
    rest.swap(incoming_);
  }
  for (auto& w : local_) rest.push_back(std::move(w));
  local_.clear();
  answer_shutting_down(rest);
  for (auto& t : admission_.take_all()) resolve(*t, shutting_down());
  while (!delayed_.empty()) {
    TransferPtr t = std::move(const_cast<TransferPtr&>(delayed_.top()));
    delayed_.pop();
    resolve(*t, shutting_down());
  }
  std::vector<Transfer*> active = active_;
  for (Transfer* raw : active) {
    TransferPtr t(raw);
    release_easy(t.get());
    resolve(*t, make_error(ErrorCode::Cancelled,
                           "the client was destroyed while the request was in flight"));
  }
  // Callbacks above may have submitted more (stopping_ is set, so only from this thread).
  while (!local_.empty()) {
    std::vector<Submission> more;
    more.swap(local_);
    answer_shutting_down(more);
  }
}

std::shared_ptr<const SharedHeaders> SharedHeaders::make(const std::vector<std::string>& headers) {
  std::shared_ptr<SharedHeaders> out(new SharedHeaders());
  for (const std::string& h : headers) out->list_ = curl_slist_append(out->list_, h.c_str());
  out->list_ = curl_slist_append(out->list_, "Expect:");
  return out;
}

SharedHeaders::~SharedHeaders() {
  if (list_ != nullptr) curl_slist_free_all(list_);
}

Result<std::unique_ptr<Transport>> Transport::create(const Config& config) {
  auto impl = std::make_unique<Impl>(config);
  if (auto started = impl->start(); !started) return std::move(started).error();
  return std::unique_ptr<Transport>(new Transport(std::move(impl)));
}

Transport::Transport(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Transport::~Transport() = default;

namespace {

Submission transfer_of(HttpExchange exchange, TransferCallback on_done) {
  auto t = std::make_unique<Transfer>();
  t->ex = std::move(exchange);
  t->on_done = std::move(on_done);
  return t;
}

}  // namespace

void Transport::submit(HttpExchange exchange, TransferCallback on_done) {
  if (exchange.marks) exchange.marks->submitted = Clock::now();
  std::vector<Submission> one;
  one.push_back(transfer_of(std::move(exchange), std::move(on_done)));
  impl_->submit(std::move(one));
}

void Transport::lead(HttpExchange exchange, TransferCallback on_done,
                     const std::function<bool()>& enough, const std::function<bool()>* lend) {
  if (exchange.marks) exchange.marks->submitted = Clock::now();
  std::vector<Submission> one;
  one.push_back(transfer_of(std::move(exchange), std::move(on_done)));
  impl_->lead(std::move(one), enough, lend);
}

bool Transport::lead_again(const std::function<bool()>& enough, const std::function<bool()>* lend) {
  return impl_->lead_again(enough, lend);
}

void Transport::submit_batch(std::vector<std::pair<HttpExchange, TransferCallback>> exchanges) {
  std::vector<Submission> batch;
  batch.reserve(exchanges.size());
  const auto now = Clock::now();
  for (auto& [exchange, on_done] : exchanges) {
    if (exchange.marks) exchange.marks->submitted = now;
    batch.push_back(transfer_of(std::move(exchange), std::move(on_done)));
  }
  impl_->submit(std::move(batch));
}

void Transport::post(std::function<void()> task) {
  std::vector<Submission> one;
  one.push_back(PostedTask{std::move(task)});
  impl_->submit(std::move(one));
}

void Transport::fail(Error error, TransferCallback on_done) {
  std::vector<Submission> one;
  one.push_back(PresetFailure{std::move(error), std::move(on_done)});
  impl_->submit(std::move(one));
}

void Transport::poke() noexcept { impl_->poke(); }

bool Transport::on_io_thread() const noexcept { return impl_->on_io_thread(); }

void Transport::stop() { impl_->stop(); }

TransportStats Transport::stats() const noexcept { return impl_->stats(); }

Result<void> Transport::warm(const std::string& url, int n, std::chrono::milliseconds timeout) {
  if (n <= 0) return {};
  // Submitted as one batch so they are on the wire at once, each on its own connection.
  std::vector<std::future<Result<HttpResult>>> waits;
  std::vector<Submission> batch;
  for (int i = 0; i < n; ++i) {
    auto promise = std::make_shared<std::promise<Result<HttpResult>>>();
    waits.push_back(promise->get_future());
    auto t = std::make_unique<Transfer>();
    t->ex.method = "HEAD";
    t->ex.url = url;
    t->ex.retry_on_status = false;
    // A warm-up never holds create() longer than one connect timeout, even against an upstream
    // that accepts and never answers; it is outside the metrics and the circuit breaker.
    t->probe = true;
    t->total_timeout = timeout;
    t->on_done = [promise](Result<HttpResult> r) { promise->set_value(std::move(r)); };
    batch.push_back(std::move(t));
  }
  impl_->submit(std::move(batch));
  for (auto& w : waits) {
    Result<HttpResult> r = w.get();
    if (!r) return std::move(r).error();
  }
  return {};
}

}  // namespace glmproxy::detail
