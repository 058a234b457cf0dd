#include "transport/transport.hpp"

#include <curl/curl.h>
#include <fmt/format.h>
#include <pthread.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstring>
#include <deque>
#include <future>
#include <map>
#include <mutex>
#include <optional>
#include <queue>
#include <random>
#include <thread>

#include "admission/aimd_limiter.hpp"
#include "admission/circuit_breaker.hpp"
#include "core/strings.hpp"
#include "core/url.hpp"
#include "protocol/protocol.hpp"
#include "transport/backoff.hpp"
#include "transport/proxy_options.hpp"

namespace glmproxy::detail {

namespace {

using Clock = std::chrono::steady_clock;

// Whether a URL (the upstream's or the proxy's) starts with "https://", in any case.
bool is_https(std::string_view url) noexcept { return iequals(url.substr(0, 8), "https://"); }

// Response header lines of one attempt, kept or not: past this the response is refused (an
// upstream sending headers without end never reaches its body). Below curl's own 300 KB limit,
// which reports a retryable receive error instead of a bad response.
constexpr std::size_t kMaxHeaderBytes = 256u << 10;

// A cancelled HTTP/1.1 stream is read on (and thrown away) for at most this long / this much, so
// that a stream close to its end leaves its connection reusable; past either, it is closed.
constexpr auto kDrainTime = std::chrono::milliseconds(100);
constexpr std::size_t kDrainBytes = 64u << 10;

enum class SinkState : std::uint8_t { Undecided, Active, Unused };

struct Transfer {
  ~Transfer() {
    if (slist != nullptr) curl_slist_free_all(slist);
  }

  HttpExchange ex;
  Transport::Impl* owner = nullptr;
  TransferCallback on_done;
  std::optional<Error> preset_error;  // resolve at once on the I/O thread
  std::function<void()> task;         // or just run this on the I/O thread
  int attempts = 0;
  Clock::time_point deadline;        // one deadline across all attempts
  Clock::time_point admit_deadline;  // while waiting for a slot
  Clock::time_point retry_at;        // while waiting out a backoff
  Clock::time_point queued_at;       // joined the admission queue (acquire wait)
  // The attempt on the wire.
  CURL* easy = nullptr;
  curl_slist* slist = nullptr;
  Clock::time_point attempt_start;
  // Set once the request is on its way (curl's pre-transfer time), so it does not count the
  // connect phase, which has its own timeout.
  std::optional<Clock::time_point> first_byte_deadline;
  bool got_response = false;
  long status = 0;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  std::optional<Error> abort_error;  // why the I/O thread stopped this attempt itself
  char errbuf[CURL_ERROR_SIZE] = {};
  // Streams.
  SinkState sink_state = SinkState::Undecided;
  Clock::time_point last_rx;  // last byte received (idle timeout)
  bool draining = false;      // cancelled and resolved; reading out the rest
  // Answered while still on the wire (a cancelled or finished stream): its admission slots (the
  // pool's and its model's) were given back then; counted in reading_out_, not in_flight_.
  bool slot_released = false;
  std::size_t drained = 0;
  Clock::time_point drain_deadline;
  // Chunked upload of a large request body.
  std::size_t upload_offset = 0;
  // Upstream protection.
  std::string host;               // scheme://host[:port] of ex.url: the breaker's key
  std::uint64_t aimd_ticket = 0;  // from AimdLimiter::on_start for this attempt
  int free_retries = 0;           // retries after a 429/1302 (our concurrency, not counted)
  bool probe = false;  // a keep-alive or warm-up HEAD of the transport's own: not in metrics,
                       // not reported to the circuit breaker
  std::optional<std::chrono::milliseconds> total_timeout;  // instead of GLMPROXY_TOTAL_TIMEOUT_MS
  std::string last_failure;      // why the attempt before a backoff failed (for a later Timeout)
  std::size_t header_bytes = 0;  // of this attempt
  bool finished_early = false;   // a stream resolved at its end marker, read out or closed after
};

// "scheme://host[:port]" of a URL, without userinfo: the circuit breaker is per upstream host,
// and its key goes into messages.
std::string host_of(const std::string& url) { return url_origin(url); }

AimdOptions aimd_options(const Config& c) {
  AimdOptions o;
  o.max_limit =
      c.admission.model_concurrency > 0 ? c.admission.model_concurrency : c.pool.max_connections;
  o.min_limit = 1;
  o.increase_interval = c.admission.increase_interval;
  return o;
}

BreakerOptions breaker_options(const Config& c) {
  BreakerOptions o;
  o.failure_threshold = c.admission.breaker_failures;
  o.failure_window = c.admission.breaker_window;
  o.cooldown = c.admission.breaker_cooldown;
  return o;
}

// A curl timeout this close to the request's deadline is the total timeout (curl's clock and
// ours differ by a few ms).
constexpr std::chrono::milliseconds kDeadlineSlack{50};

// The most waiting transfers one admission pass looks at past ones held by their model's limit.
constexpr std::size_t kAdmitScan = 256;

using TransferPtr = std::unique_ptr<Transfer>;

struct RetryLater {
  bool operator()(const TransferPtr& a, const TransferPtr& b) const {
    return a->retry_at > b->retry_at;
  }
};

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = ascii_lower(c);
  return out;
}

long to_long_ms(std::chrono::milliseconds ms) {
  return static_cast<long>(std::max<std::int64_t>(1, ms.count()));
}

}  // namespace

class Transport::Impl {
 public:
  explicit Impl(const Config& config)
      : config_(config),
        rng_(std::random_device{}()),
        pool_(config.stream.buffer_pool_enabled,
              static_cast<std::size_t>(std::max(16, 2 * config.pool.max_connections))),
        aimd_(aimd_options(config)),
        breaker_(breaker_options(config)),
        aimd_max_(aimd_.limit({})) {}

  TransportStats stats() const noexcept {
    TransportStats s;
    s.buffers = pool_.stats();
    s.upload_reads = upload_reads_.load(std::memory_order_relaxed);
    s.body_reads = body_reads_.load(std::memory_order_relaxed);
    s.loop_turns = loop_turns_.load(std::memory_order_relaxed);
    s.wakeups = wakeups_.load(std::memory_order_relaxed);
    s.easy_handles_created = easy_created_.load(std::memory_order_relaxed);
    s.streams_cancelled = streams_cancelled_.load(std::memory_order_relaxed);
    s.cancelled_connections_kept = drained_kept_.load(std::memory_order_relaxed);
    s.concurrency_decreases = aimd_decreases_.load(std::memory_order_relaxed);
    s.breaker_opened = breaker_opened_.load(std::memory_order_relaxed);
    s.breaker_rejections = breaker_rejections_.load(std::memory_order_relaxed);
    s.in_flight = in_flight_now_.load(std::memory_order_relaxed);
    s.reading_out = reading_out_now_.load(std::memory_order_relaxed);
    s.model_concurrency_max = aimd_max_;
    try {
      std::lock_guard lock(limits_mu_);
      s.model_limits = model_limits_;
    } catch (...) {
      // Out of memory copying the names: the counters still go out.
    }
    s.waiting = waiting_now_.load(std::memory_order_relaxed);
    s.open_connections = open_sockets_.load(std::memory_order_relaxed);
    s.connections_opened = sockets_opened_.load(std::memory_order_relaxed);
    s.tls_handshakes = tls_handshakes_.load(std::memory_order_relaxed);
    s.attempts = attempts_.load(std::memory_order_relaxed);
    s.retries = retries_.load(std::memory_order_relaxed);
    s.bytes_sent = bytes_sent_.load(std::memory_order_relaxed);
    s.bytes_received = bytes_received_.load(std::memory_order_relaxed);
    s.acquire_wait = acquire_wait_.snapshot();
    return s;
  }

  ~Impl() {
    stop();
    for (CURL* e : free_easy_) curl_easy_cleanup(e);
    if (multi_ != nullptr) curl_multi_cleanup(multi_);
    if (share_ != nullptr) curl_share_cleanup(share_);
  }

  // The I/O thread resolves everything still queued or in flight, then ends. Idempotent.
  void stop() {
    {
      std::lock_guard lock(mu_);
      stopping_ = true;
    }
    if (multi_ != nullptr) curl_multi_wakeup(multi_);
    if (thread_.joinable()) thread_.join();
  }

  Result<void> start() {
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
      return make_error(ErrorCode::Internal, "curl_global_init failed");
    }
    multi_ = curl_multi_init();
    share_ = curl_share_init();
    if (multi_ == nullptr || share_ == nullptr) {
      return make_error(ErrorCode::Internal, "could not create libcurl multi/share handles");
    }
    // DNS answers and TLS sessions are shared by every handle (all on the I/O thread).
    curl_share_setopt(share_, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
    curl_share_setopt(share_, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
    // A CA or proxy option this libcurl refuses fails create(), not every request.
    if (CURL* probe = curl_easy_init(); probe != nullptr) {
      const CURLcode rc = set_tls_options(probe);
      const CURLcode proxy = set_proxy_options(probe, config_.upstream);
      curl_easy_cleanup(probe);
      if (rc != CURLE_OK) return tls_options_error(rc);
      if (proxy != CURLE_OK) return proxy_options_error(config_.upstream, proxy);
    }
    const long max_conns = config_.pool.max_connections;
    curl_multi_setopt(multi_, CURLMOPT_MAX_TOTAL_CONNECTIONS, max_conns);
    curl_multi_setopt(multi_, CURLMOPT_MAX_HOST_CONNECTIONS, max_conns);
    // Idle connections kept for reuse; curl closes them once older than the max idle age.
    curl_multi_setopt(multi_, CURLMOPT_MAXCONNECTS,
                      std::max<long>(max_conns, config_.pool.min_connections));
    thread_ = std::thread([this] { run(); });
    thread_id_ = thread_.get_id();
    return {};
  }

  // Hands transfers to the I/O thread together (they start in the same loop iteration).
  void submit(std::vector<TransferPtr> transfers) {
    if (on_io_thread()) {
      // From a callback on the I/O thread (e.g. complete_async() sending the next request):
      // no lock and no wake-up; the loop takes them before it polls again.
      for (auto& t : transfers) local_.push_back(std::move(t));
      return;
    }
    bool wake = false;
    {
      std::lock_guard lock(mu_);
      if (!stopping_) {
        for (auto& t : transfers) incoming_.push_back(std::move(t));
        transfers.clear();
        // Only a sleeping I/O thread needs the wake-up (a system call and a poll round); a
        // busy one takes the queue before it sleeps again.
        wake = sleeping_;
        sleeping_ = false;
      }
    }
    if (!transfers.empty()) {
      // The client is being destroyed: resolve here, as no I/O thread will.
      for (auto& t : transfers) {
        if (t->task) {
          run_task(*t);
        } else {
          resolve(*t, make_error(ErrorCode::ShuttingDown, "the client is shutting down"));
        }
      }
      return;
    }
    if (wake) {
      wakeups_.fetch_add(1, std::memory_order_relaxed);
      curl_multi_wakeup(multi_);
    }
  }

  bool on_io_thread() const noexcept { return std::this_thread::get_id() == thread_id_; }

  void poke() noexcept {
    cancel_poked_.store(true, std::memory_order_release);
    if (multi_ != nullptr) {
      wakeups_.fetch_add(1, std::memory_order_relaxed);
      curl_multi_wakeup(multi_);
    }
  }

  // The configured base URL `url` was built from (the Anthropic one, or else the OpenAI one).
  const std::string& base_of(const std::string& url) const noexcept {
    const std::string& anthropic = config_.upstream.anthropic_base_url;
    std::string_view prefix(anthropic);
    prefix = prefix.substr(0, prefix.find('?'));
    while (!prefix.empty() && prefix.back() == '/') prefix.remove_suffix(1);
    if (!prefix.empty() && std::string_view(url).starts_with(prefix)) return anthropic;
    return config_.upstream.openai_base_url;
  }

  static void run_task(Transfer& t) {
    std::function<void()> task = std::move(t.task);
    try {
      task();
    } catch (...) {
      // A throwing user callback must not take the I/O thread down.
    }
  }

 private:
  void run() {
    // libcurl asks for SIGPIPE to be ignored with NOSIGNAL; block it on this thread too.
    sigset_t pipe;
    sigemptyset(&pipe);
    sigaddset(&pipe, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe, nullptr);

    while (true) {
      // One turn of the loop; an exception (out of memory) must not end the thread, which
      // would leave every request unanswered: the next turn tries again.
      try {
        loop_turns_.fetch_add(1, std::memory_order_relaxed);
        std::vector<TransferPtr> batch;
        bool stop = false;
        {
          std::lock_guard lock(mu_);
          batch.swap(incoming_);
          stop = stopping_;
          sleeping_ = false;
        }
        const auto now = Clock::now();
        accept(batch, now);
        if (stop) break;
        step(now);
        int still_running = 0;
        curl_multi_perform(multi_, &still_running);
        drain_done();
        // What the callbacks just submitted starts now, without a trip through poll. Once per
        // turn: callbacks that keep submitting (a chain of cache hits, an instant retry of a
        // refusal) are taken on the next turn, after the timers, the transfers and `stop`.
        if (!local_.empty()) {
          std::vector<TransferPtr> mine;
          mine.swap(local_);
          accept(mine, Clock::now());
        }
        admit(Clock::now());
        waiting_now_.store(waiting_.size(), std::memory_order_relaxed);
        // Tasks run by accept() may have submitted more: then only look, do not wait.
        int timeout = local_.empty() ? poll_timeout_ms(Clock::now()) : 0;
        if (timeout > 0) {
          // Checked under the lock, so a submitter either sees sleeping_ and wakes the poll, or
          // its work is seen here and the poll does not wait.
          std::lock_guard lock(mu_);
          if (!incoming_.empty() || stopping_) {
            timeout = 0;
          } else {
            sleeping_ = true;
          }
        }
        curl_multi_poll(multi_, nullptr, 0, timeout, nullptr);
      } catch (...) {
      }
    }
    shutdown();
  }

  // Takes submitted transfers in: tasks and preset errors are run and resolved at once, the
  // rest queue for admission.
  void accept(std::vector<TransferPtr>& batch, Clock::time_point now) {
    for (auto& t : batch) {
      if (t->task) {
        run_task(*t);
        continue;
      }
      if (t->preset_error) {
        Error e = std::move(*t->preset_error);
        resolve(*t, std::move(e));
        continue;
      }
      t->deadline = now + t->total_timeout.value_or(config_.timeouts.total);
      t->admit_deadline = now + config_.pool.acquire_timeout;
      t->queued_at = now;
      waiting_.push_back(std::move(t));
      last_activity_ = now;
    }
    batch.clear();
  }

  // Timers: pool waits, backoffs, first-byte deadlines.
  void step(Clock::time_point now) {
    admit(now);  // what can start now does not time out
    while (!waiting_.empty() && waiting_.front()->admit_deadline <= now) {
      TransferPtr t = std::move(waiting_.front());
      waiting_.pop_front();
      const std::string& model = t->ex.model;
      std::string why;
      if (in_flight_ >= config_.pool.max_connections) {
        why = fmt::format("{} requests on the wire", in_flight_);
      } else if (const int limit = aimd_.limit(model); limit < aimd_max_) {
        why = fmt::format(
            "model {} held to {} requests at once after the upstream said it had too many "
            "(429/1302)",
            model, limit);
      } else {
        // The configured limit, not a cut: a 429 is not what held it.
        why =
            fmt::format("model {} at its limit of {} requests at once (GLMPROXY_MODEL_CONCURRENCY)",
                        model, limit);
      }
      resolve(*t, make_error(ErrorCode::PoolTimeout,
                             fmt::format("no connection slot became free within "
                                         "POOL_ACQUIRE_TIMEOUT={} ms ({})",
                                         config_.pool.acquire_timeout.count(), why)));
    }
    while (!delayed_.empty() && delayed_.top()->retry_at <= now) {
      TransferPtr t = std::move(const_cast<TransferPtr&>(delayed_.top()));
      delayed_.pop();
      t->admit_deadline = now + config_.pool.acquire_timeout;
      t->queued_at = now;
      waiting_.push_back(std::move(t));
    }
    update_first_byte_deadlines();
    for (Transfer* t : active_) {
      if (!t->got_response && !t->abort_error && t->first_byte_deadline &&
          *t->first_byte_deadline <= now) {
        t->abort_error = make_error(
            ErrorCode::Timeout,
            fmt::format("first byte timeout: no response within GLMPROXY_FIRST_BYTE_TIMEOUT_MS="
                        "{} ms of sending the request (not retried: the upstream may have it)",
                        config_.timeouts.first_byte.count()));
        aborted_.push_back(t);
      }
    }
    for (Transfer* t : active_) {
      if (t->abort_error) continue;
      if (t->draining) {
        if (now >= t->drain_deadline) {
          t->abort_error = make_error(ErrorCode::Cancelled, "stream cancelled");
          aborted_.push_back(t);
        }
      } else if (t->ex.sink && t->got_response &&
                 now - t->last_rx >= config_.timeouts.stream_idle) {
        t->abort_error = make_error(
            ErrorCode::Timeout,
            fmt::format("stream idle timeout: no data for GLMPROXY_STREAM_IDLE_TIMEOUT_MS={} ms "
                        "(after {})",
                        config_.timeouts.stream_idle.count(),
                        t->sink_state == SinkState::Active ? t->ex.sink->progress()
                                                           : std::string("the headers")));
        aborted_.push_back(t);
      }
    }
    cancel_requested_streams();
    for (Transfer* t : aborted_) finish(t, CURLE_OK);
    aborted_.clear();
    keep_alive(now);
    admit(now);
  }

  // POOL_MIN_CONNECTIONS stay open while the client is idle: before the idle age would make
  // curl drop them, a HEAD request per connection refreshes them (only once the client has
  // connected somewhere; never with DISABLE_CONNECTION_POOL).
  bool keep_alive_due(Clock::time_point now) const {
    return config_.pool.min_connections > 0 && !config_.pool.disabled &&
           keepalive_url_ != nullptr && in_flight_ + reading_out_ == 0 && waiting_.empty() &&
           delayed_.empty() && now >= last_activity_ + config_.pool.max_idle / 2;
  }

  void keep_alive(Clock::time_point now) {
    if (!keep_alive_due(now)) return;
    last_activity_ = now;
    for (int i = 0; i < config_.pool.min_connections; ++i) {
      auto t = std::make_unique<Transfer>();
      t->ex.method = "HEAD";
      t->ex.url = *keepalive_url_;
      t->ex.retry_on_status = false;
      t->probe = true;
      t->deadline =
          now + std::min<std::chrono::milliseconds>(config_.timeouts.total, config_.pool.max_idle);
      t->admit_deadline = now + config_.pool.acquire_timeout;
      t->queued_at = now;
      waiting_.push_back(std::move(t));
    }
  }

  void update_first_byte_deadlines() {
    for (Transfer* t : active_) {
      if (t->got_response || t->first_byte_deadline) continue;
      curl_off_t pretransfer_us = 0;
      curl_easy_getinfo(t->easy, CURLINFO_PRETRANSFER_TIME_T, &pretransfer_us);
      if (pretransfer_us > 0) {
        t->first_byte_deadline = t->attempt_start + std::chrono::microseconds(pretransfer_us) +
                                 config_.timeouts.first_byte;
      }
    }
  }

  int poll_timeout_ms(Clock::time_point now) {
    update_first_byte_deadlines();
    Clock::time_point next = now + std::chrono::milliseconds(1000);
    if (!waiting_.empty()) next = std::min(next, waiting_.front()->admit_deadline);
    if (!delayed_.empty()) next = std::min(next, delayed_.top()->retry_at);
    if (config_.pool.min_connections > 0 && keepalive_url_ != nullptr &&
        in_flight_ + reading_out_ == 0) {
      next = std::min(next, last_activity_ + config_.pool.max_idle / 2);
    }
    for (const Transfer* t : active_) {
      if (!t->got_response && t->first_byte_deadline)
        next = std::min(next, *t->first_byte_deadline);
      if (t->draining) {
        next = std::min(next, t->drain_deadline);
      } else if (t->ex.sink && t->got_response) {
        next = std::min(next, t->last_rx + config_.timeouts.stream_idle);
      }
    }
    auto ms = std::chrono::ceil<std::chrono::milliseconds>(next - now).count();
    return static_cast<int>(std::clamp<std::int64_t>(ms, 0, 1000));
  }

  // FIFO, except that a transfer whose model is at its concurrency limit lets later ones of
  // other models pass (looking at most kAdmitScan entries past held ones).
  void admit(Clock::time_point now) {
    std::size_t i = 0, held = 0;
    while (in_flight_ < config_.pool.max_connections && i < waiting_.size() && held < kAdmitScan) {
      Transfer& w = *waiting_[i];
      if (now < w.deadline && !aimd_.can_start(w.ex.model)) {
        ++i;
        ++held;
        continue;
      }
      TransferPtr t = std::move(waiting_[i]);
      waiting_.erase(waiting_.begin() + static_cast<std::ptrdiff_t>(i));
      if (now >= t->deadline) {
        resolve(*t, total_timeout_error(*t));
        continue;
      }
      if (t->host.empty()) t->host = host_of(t->ex.url);
      std::chrono::milliseconds wait{0};
      if (!breaker_.allow(t->host, now, &wait)) {
        breaker_rejections_.fetch_add(1, std::memory_order_relaxed);
        Error e = make_error(
            ErrorCode::UpstreamError,
            fmt::format("circuit breaker open for {}: {} consecutive failures; next probe in "
                        "{} ms (GLMPROXY_BREAKER_COOLDOWN_MS={})",
                        t->host, config_.admission.breaker_failures, wait.count(),
                        config_.admission.breaker_cooldown.count()));
        e.upstream_code = "circuit_open";
        e.retry_after = wait;
        resolve(*t, std::move(e));
        continue;
      }
      t->aimd_ticket = aimd_.on_start(t->ex.model);
      end_a_read_out_for_room();
      if (config_.metrics.enabled && !t->probe) {
        acquire_wait_.record(
            std::chrono::duration_cast<std::chrono::microseconds>(now - t->queued_at));
      }
      start_attempt(std::move(t), now);
    }
  }

  // What an ended attempt tells the concurrency limiter and the circuit breaker. `answer` is
  // the attempt's non-2xx answer as an Error, when it had one.
  void report_outcome(Transfer& t, CURLcode code, Clock::time_point now, const Error* answer) {
    using Outcome = AimdLimiter::Outcome;
    Outcome outcome = Outcome::Other;
    const int status = static_cast<int>(t.status);
    const bool answered = code == CURLE_OK || t.got_response;
    if (t.probe) {
      // Warm-up and keep-alive probes say nothing about the upstream's health: a warm-up that
      // failed before the first real request must not open the breaker.
    } else if (t.finished_early) {
      breaker_.on_success(t.host);  // answered in full; how the body was closed is ours
    } else if (t.abort_error && t.abort_error->code == ErrorCode::Cancelled) {
      breaker_.on_abandon(t.host);
    } else if (status >= 500 || (!answered && !t.abort_error) ||
               (t.abort_error && t.abort_error->code == ErrorCode::Timeout)) {
      breaker_.on_failure(t.host, now);
    } else if (status > 0) {
      breaker_.on_success(t.host);
    } else {
      breaker_.on_abandon(t.host);
    }
    if (status == 429 && answer != nullptr) {
      // Too many at once (Z.AI 1302, or a 429 that says nothing more) halves the model's limit;
      // quota and balance codes say nothing about concurrency.
      if (answer->upstream_code == "1302" || answer->upstream_code.empty()) {
        outcome = Outcome::Overloaded;
      }
    } else if (status >= 200 && status < 300) {
      outcome = Outcome::Success;
    }
    if (!t.slot_released) finish_aimd(t, outcome, now);  // else done when it was answered
    breaker_opened_.store(breaker_.opened(), std::memory_order_relaxed);
    t.free_retries += outcome == Outcome::Overloaded ? 1 : 0;
  }

  // Gives the attempt's model slot back to the limiter; a limit that moved is published for
  // stats() (rare: a 429/1302, or a step back up).
  void finish_aimd(Transfer& t, AimdLimiter::Outcome outcome, Clock::time_point now) {
    const std::string& model = t.ex.model;
    const int before = aimd_.limit(model);
    const std::uint64_t cuts = aimd_.decreases();
    aimd_.on_finish(model, t.aimd_ticket, outcome, now);
    aimd_decreases_.fetch_add(aimd_.decreases() - cuts, std::memory_order_relaxed);
    const int after = aimd_.limit(model);
    if (after == before) return;
    try {
      std::lock_guard lock(limits_mu_);
      if (after >= aimd_max_) {
        model_limits_.erase(model);
      } else {
        model_limits_[model] = after;
      }
    } catch (...) {
      // Out of memory for the name: the published limit is stale, admission is not.
    }
  }

  // A stream answered while its transfer stays on the wire (cancelled, or finished at its end
  // marker, and now read out or wound down): its slots go back at once, before its caller is
  // answered, so the next request need not wait for the read-out.
  void release_slot(Transfer& t) {
    if (t.slot_released) return;
    t.slot_released = true;
    --in_flight_;
    ++reading_out_;
    in_flight_now_.store(in_flight_, std::memory_order_relaxed);
    reading_out_now_.store(reading_out_, std::memory_order_relaxed);
    // The status was 2xx (the body went to the stream): the upstream answered.
    finish_aimd(t, AimdLimiter::Outcome::Success, Clock::now());
  }

  // A transfer about to start while read-outs hold connections: if curl's connection cap
  // (POOL_MAX_CONNECTIONS) would make it wait for one, the oldest read-out ends now and its
  // connection is closed. A read-out only keeps a connection nobody else needs.
  void end_a_read_out_for_room() {
    if (reading_out_ == 0 || in_flight_ + reading_out_ < config_.pool.max_connections) return;
    for (Transfer* t : active_) {
      if (t->draining && !t->abort_error) {
        t->abort_error = make_error(ErrorCode::Cancelled, "stream cancelled");
        finish(t, CURLE_OK);
        return;
      }
    }
  }

  // The deadline passed: names the bound that applied (a warm-up's or probe's own, or
  // GLMPROXY_TOTAL_TIMEOUT_MS) and, when earlier attempts failed, why the last one did.
  Error total_timeout_error(const Transfer& t) const {
    std::string message =
        t.total_timeout ? fmt::format("total timeout: the request's own bound of {} ms passed",
                                      t.total_timeout->count())
                        : fmt::format("total timeout: GLMPROXY_TOTAL_TIMEOUT_MS={} ms passed",
                                      config_.timeouts.total.count());
    if (!t.last_failure.empty()) {
      message += fmt::format(" (after {} attempt{}; the last failed: {})", t.attempts,
                             t.attempts == 1 ? "" : "s", t.last_failure);
    }
    return make_error(ErrorCode::Timeout, std::move(message));
  }

  void start_attempt(TransferPtr owned, Clock::time_point now) {
    Transfer* t = owned.release();
    ++t->attempts;
    if (!t->probe) {
      attempts_.fetch_add(1, std::memory_order_relaxed);
      if (t->attempts > 1) retries_.fetch_add(1, std::memory_order_relaxed);
    }
    t->got_response = false;
    t->status = 0;
    t->headers.clear();
    t->body.clear();
    t->abort_error.reset();
    t->errbuf[0] = '\0';
    t->attempt_start = now;
    t->first_byte_deadline.reset();
    t->owner = this;
    t->sink_state = SinkState::Undecided;
    t->last_rx = now;
    t->draining = false;
    t->slot_released = false;
    t->drained = 0;
    t->upload_offset = 0;
    t->header_bytes = 0;
    t->finished_early = false;

    CURL* e;
    if (!free_easy_.empty()) {
      e = free_easy_.back();
      free_easy_.pop_back();
      curl_easy_reset(e);
    } else {
      e = curl_easy_init();
      easy_created_.fetch_add(1, std::memory_order_relaxed);
    }
    if (e == nullptr) {
      TransferPtr back(t);
      resolve(*back, make_error(ErrorCode::Internal, "curl_easy_init failed"));
      return;
    }
    std::optional<Error> refused;
    if (const CURLcode rc = set_tls_options(e); rc != CURLE_OK) {
      refused = tls_options_error(rc);
    } else if (const CURLcode proxy = set_proxy_options(e, config_.upstream); proxy != CURLE_OK) {
      refused = proxy_options_error(config_.upstream, proxy);
    }
    if (refused) {
      // Nothing went on the wire: the slots admit() took are given back.
      free_easy_.push_back(e);
      finish_aimd(*t, AimdLimiter::Outcome::Other, now);
      breaker_.on_abandon(t->host);
      TransferPtr back(t);
      resolve(*back, std::move(*refused));
      return;
    }
    t->easy = e;
    // Probes go to the configured base URL the client last used, never to a request's own
    // path (a send() path may carry a signed query that must not be re-sent every 15 s).
    if (!t->probe || keepalive_url_ == nullptr) keepalive_url_ = &base_of(t->ex.url);
    if (t->slist == nullptr && !t->ex.shared_headers) {
      for (const std::string& h : t->ex.headers) t->slist = curl_slist_append(t->slist, h.c_str());
      // No "Expect: 100-continue" round trip for large bodies.
      t->slist = curl_slist_append(t->slist, "Expect:");
    }
    const auto remaining = std::chrono::duration_cast<std::chrono::milliseconds>(t->deadline - now);
    curl_easy_setopt(e, CURLOPT_URL, t->ex.url.c_str());
    curl_easy_setopt(e, CURLOPT_PRIVATE, t);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_SHARE, share_);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER,
                     t->ex.shared_headers ? t->ex.shared_headers->list() : t->slist);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, t->errbuf);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, to_long_ms(config_.timeouts.connect));
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, to_long_ms(remaining));
    curl_easy_setopt(
        e, CURLOPT_MAXAGE_CONN,
        static_cast<long>(std::max<std::int64_t>(
            1, std::chrono::duration_cast<std::chrono::seconds>(config_.pool.max_idle).count())));
    curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, "");
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, &Impl::on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, t);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, &Impl::on_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, t);
    curl_easy_setopt(e, CURLOPT_BUFFERSIZE, static_cast<long>(config_.stream.response_chunk_size));
    // Sockets are counted as curl opens and closes them (open = in use + idle in the pool).
    curl_easy_setopt(e, CURLOPT_OPENSOCKETFUNCTION, &Impl::on_open_socket);
    curl_easy_setopt(e, CURLOPT_OPENSOCKETDATA, this);
    curl_easy_setopt(e, CURLOPT_CLOSESOCKETFUNCTION, &Impl::on_close_socket);
    curl_easy_setopt(e, CURLOPT_CLOSESOCKETDATA, this);
    // HTTP/2: wait for a connection being set up to say whether it multiplexes, instead of
    // opening one connection per concurrent transfer. Only https (h2 comes by ALPN; over plain
    // http curl would serialise a burst behind the first connection), and not for HEAD:
    // POOL_WARM's requests each want a connection of their own.
    if (t->ex.method != "HEAD" && t->ex.url.size() >= 8 && is_https(t->ex.url)) {
      curl_easy_setopt(e, CURLOPT_PIPEWAIT, 1L);
    }
    if (config_.pool.disabled) {
      curl_easy_setopt(e, CURLOPT_FRESH_CONNECT, 1L);
      curl_easy_setopt(e, CURLOPT_FORBID_REUSE, 1L);
    }
    if (t->ex.method == "HEAD") {
      curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
    } else if (t->ex.method == "POST" || !t->ex.body.empty()) {
      if (t->ex.body.size() > config_.stream.request_chunk_size) {
        // STREAM_REQUEST_CHUNK_SIZE: a large body goes out through the read callback, at most
        // that many bytes per call (still with a Content-Length).
        curl_easy_setopt(e, CURLOPT_POST, 1L);
        curl_easy_setopt(e, CURLOPT_READFUNCTION, &Impl::on_read);
        curl_easy_setopt(e, CURLOPT_READDATA, t);
        curl_easy_setopt(e, CURLOPT_SEEKFUNCTION, &Impl::on_seek);
        curl_easy_setopt(e, CURLOPT_SEEKDATA, t);
        curl_easy_setopt(e, CURLOPT_UPLOAD_BUFFERSIZE,
                         static_cast<long>(std::clamp<std::size_t>(
                             config_.stream.request_chunk_size, 16u << 10, 2u << 20)));
      } else {
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, t->ex.body.data());
      }
      curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(t->ex.body.size()));
      if (t->ex.method != "POST") curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, t->ex.method.c_str());
    } else if (t->ex.method != "GET") {
      curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, t->ex.method.c_str());
    }
    ++in_flight_;
    in_flight_now_.store(in_flight_, std::memory_order_relaxed);
    active_.push_back(t);
    curl_multi_add_handle(multi_, e);
  }

  // GLMPROXY_CA_FILE / GLMPROXY_CA_PATH. Peer and host verification are curl's defaults and
  // are never turned off.
  // They are trusted for an https:// proxy's own certificate too (CURLOPT_PROXY_CAINFO/CAPATH):
  // a corporate proxy's certificate is typically issued by the same private CA.
  CURLcode set_tls_options(CURL* e) const {
    const auto& up = config_.upstream;
    if (!up.ca_file.empty()) {
      for (CURLoption option : {CURLOPT_CAINFO, CURLOPT_PROXY_CAINFO}) {
        if (CURLcode rc = curl_easy_setopt(e, option, up.ca_file.c_str()); rc != CURLE_OK)
          return rc;
      }
    }
    if (!up.ca_path.empty()) {
      for (CURLoption option : {CURLOPT_CAPATH, CURLOPT_PROXY_CAPATH}) {
        if (CURLcode rc = curl_easy_setopt(e, option, up.ca_path.c_str()); rc != CURLE_OK)
          return rc;
      }
    }
    return CURLE_OK;
  }

  static Error tls_options_error(CURLcode rc) {
    return make_error(
        ErrorCode::InvalidConfig,
        fmt::format("libcurl refused GLMPROXY_CA_FILE / GLMPROXY_CA_PATH: {} (curl {})",
                    curl_easy_strerror(rc), static_cast<int>(rc)));
  }

  static curl_socket_t on_open_socket(void* user, curlsocktype, curl_sockaddr* address) {
    // Close-on-exec, so that a child the application spawns does not inherit the connection.
    const curl_socket_t fd =
        ::socket(address->family, address->socktype | SOCK_CLOEXEC, address->protocol);
    if (fd != CURL_SOCKET_BAD) {
      auto* self = static_cast<Impl*>(user);
      self->open_sockets_.fetch_add(1, std::memory_order_relaxed);
      self->sockets_opened_.fetch_add(1, std::memory_order_relaxed);
    }
    return fd;
  }

  static int on_close_socket(void* user, curl_socket_t fd) {
    static_cast<Impl*>(user)->open_sockets_.fetch_sub(1, std::memory_order_relaxed);
    return ::close(fd);
  }

  // Bytes on the wire and, when profiled, curl's phase timings of the attempt that just ended.
  void account(Transfer& t) {
    // A transfer already answered (a cancelled stream) had its marks filled then: its caller
    // may be reading them now.
    const bool marks = t.ex.marks != nullptr && t.on_done;
    const bool count = config_.metrics.enabled && !t.probe;
    if (!count && !marks) return;
    const auto [sent, received] = wire_bytes(t);
    if (count) {
      bytes_sent_.fetch_add(sent, std::memory_order_relaxed);
      bytes_received_.fetch_add(received, std::memory_order_relaxed);
    }
    if (marks) fill_marks(t, sent, received);
  }

  // Bytes the attempt sent and received so far, headers included.
  std::pair<std::uint64_t, std::uint64_t> wire_bytes(const Transfer& t) const {
    long request_size = 0, header_size = 0;
    curl_off_t uploaded = 0, downloaded = 0;
    curl_easy_getinfo(t.easy, CURLINFO_REQUEST_SIZE, &request_size);
    curl_easy_getinfo(t.easy, CURLINFO_SIZE_UPLOAD_T, &uploaded);
    curl_easy_getinfo(t.easy, CURLINFO_HEADER_SIZE, &header_size);
    curl_easy_getinfo(t.easy, CURLINFO_SIZE_DOWNLOAD_T, &downloaded);
    // curl 7.88 counts a POSTFIELDS body in the request size when it goes out with the
    // headers (under 64 KiB); a larger one, or one sent by the read callback, only as upload.
    constexpr std::size_t kSentWithHeaders = 64u << 10;
    const bool read_callback = t.ex.body.size() > config_.stream.request_chunk_size;
    const bool in_request_size = !read_callback && t.ex.body.size() < kSentWithHeaders;
    const auto sent =
        static_cast<std::uint64_t>(std::max<long>(0, request_size)) +
        (in_request_size ? 0 : static_cast<std::uint64_t>(std::max<curl_off_t>(0, uploaded)));
    const auto received = static_cast<std::uint64_t>(std::max<curl_off_t>(0, downloaded)) +
                          static_cast<std::uint64_t>(std::max<long>(0, header_size));
    return {sent, received};
  }

  // curl's phase timings of the attempt, for the profiler. Called before the exchange's
  // callback runs (which hands the marks to the caller), never after.
  void fill_marks(Transfer& t, std::uint64_t sent, std::uint64_t received) {
    TransferMarks& m = *t.ex.marks;
    m.admitted = t.attempt_start;
    m.attempts = t.attempts;
    m.bytes_sent += sent;
    m.bytes_received += received;
    auto time_of = [&](CURLINFO info) -> std::int64_t {
      curl_off_t us = 0;
      curl_easy_getinfo(t.easy, info, &us);
      return us > 0 ? static_cast<std::int64_t>(us) : -1;
    };
    long new_connections = 0;
    curl_easy_getinfo(t.easy, CURLINFO_NUM_CONNECTS, &new_connections);
    m.reused_connection = new_connections == 0 && time_of(CURLINFO_PRETRANSFER_TIME_T) >= 0;
    m.dns_us = m.reused_connection ? -1 : time_of(CURLINFO_NAMELOOKUP_TIME_T);
    m.connect_us = m.reused_connection ? -1 : time_of(CURLINFO_CONNECT_TIME_T);
    m.tls_us = m.reused_connection ? -1 : time_of(CURLINFO_APPCONNECT_TIME_T);
    m.sent_us = time_of(CURLINFO_PRETRANSFER_TIME_T);
    m.first_byte_us = t.got_response ? time_of(CURLINFO_STARTTRANSFER_TIME_T) : -1;
    m.total_us = time_of(CURLINFO_TOTAL_TIME_T);
  }

  static size_t on_read(char* buffer, size_t size, size_t n, void* user) noexcept {
    auto* t = static_cast<Transfer*>(user);
    const std::string& body = t->ex.body;
    const std::size_t room = std::min(size * n, t->owner->config_.stream.request_chunk_size);
    const std::size_t len = std::min(room, body.size() - t->upload_offset);
    std::memcpy(buffer, body.data() + t->upload_offset, len);
    t->upload_offset += len;
    t->owner->upload_reads_.fetch_add(1, std::memory_order_relaxed);
    return len;
  }

  static int on_seek(void* user, curl_off_t offset, int origin) {
    auto* t = static_cast<Transfer*>(user);
    if (origin != SEEK_SET || offset < 0 || static_cast<std::size_t>(offset) > t->ex.body.size()) {
      return CURL_SEEKFUNC_FAIL;
    }
    t->upload_offset = static_cast<std::size_t>(offset);
    return CURL_SEEKFUNC_OK;
  }

  // A streamed body goes to the sink once the status says 2xx; everything else is buffered.
  size_t stream_body(Transfer* t, std::string_view chunk) {
    if (t->sink_state == SinkState::Undecided) {
      long status = 0;
      curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &status);
      t->sink_state = status >= 200 && status < 300 ? SinkState::Active : SinkState::Unused;
      if (t->sink_state == SinkState::Active)
        t->ex.sink->begin(pool_, find_header(t->headers, "content-type"));
    }
    if (t->sink_state != SinkState::Active) return 0;  // buffer it
    const BodySink::Action action = t->ex.sink->on_body(chunk);
    switch (action) {
      case BodySink::Action::Continue:
        return chunk.size();
      case BodySink::Action::Fail:
        t->abort_error = t->ex.sink->error();
        return CURL_WRITEFUNC_ERROR;
      case BodySink::Action::Cancel:
      case BodySink::Action::Finished:
        break;
    }
    const bool finished = action == BodySink::Action::Finished;
    return answer_early(t, finished) ? CURL_WRITEFUNC_ERROR : chunk.size();
  }

  // A stream answered while its transfer is still on the wire: finished at its end marker, or
  // cancelled by its consumer. True: end the transfer now (abort_error set); false: it reads out
  // the rest (draining) so that the connection can be reused.
  bool answer_early(Transfer* t, bool finished) {
    // The caller is answered now; the transfer winds down on its own. Its marks are filled
    // before the answer: after it, the caller may be reading them.
    if (t->ex.marks) {
      const auto [sent, received] = wire_bytes(*t);
      fill_marks(*t, sent, received);
    }
    curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &t->status);
    release_slot(*t);
    if (finished) {
      // The end marker arrived: the reply is whole, whether or not the upstream ends the body.
      t->finished_early = true;
      resolve_ok(*t);
    } else {
      streams_cancelled_.fetch_add(1, std::memory_order_relaxed);
      resolve(*t, make_error(ErrorCode::Cancelled,
                             "the stream was cancelled by its on_event callback"));
    }
    long version = 0;
    curl_easy_getinfo(t->easy, CURLINFO_HTTP_VERSION, &version);
    if (version >= CURL_HTTP_VERSION_2_0 || config_.pool.disabled) {
      // HTTP/2 resets the stream alone (the connection stays); nothing to save by reading on.
      t->abort_error =
          make_error(ErrorCode::Cancelled, finished ? "stream finished" : "stream cancelled");
      return true;
    }
    t->draining = true;
    t->drain_deadline = Clock::now() + kDrainTime;
    return false;
  }

  // After poke(): streams whose consumer asked to cancel are answered Cancelled now, as if the
  // next chunk's event had been refused, without waiting for that chunk.
  void cancel_requested_streams() {
    if (!cancel_poked_.exchange(false, std::memory_order_acq_rel)) return;
    for (Transfer* t : active_) {
      if (t->abort_error || t->draining || !t->on_done || !t->ex.sink ||
          t->sink_state != SinkState::Active || !t->ex.sink->cancel_requested()) {
        continue;
      }
      if (answer_early(t, /*finished=*/false)) aborted_.push_back(t);
    }
  }

  static size_t on_body(char* data, size_t size, size_t n, void* user) {
    // Called by libcurl: nothing may unwind through it (an allocation failure, a sink's).
    auto* t = static_cast<Transfer*>(user);
    try {
      return body_piece(t, data, size * n);
    } catch (...) {
      if (!t->abort_error)
        t->abort_error = make_error(ErrorCode::Internal, "out of memory");  // allocates nothing
      return CURL_WRITEFUNC_ERROR;
    }
  }

  static size_t body_piece(Transfer* t, char* data, size_t len) {
    if (len == 0) return 0;
    t->owner->body_reads_.fetch_add(1, std::memory_order_relaxed);
    t->got_response = true;
    if (t->ex.sink) t->last_rx = Clock::now();  // the stream idle timeout
    if (t->draining) {
      t->drained += len;
      return t->drained > kDrainBytes ? CURL_WRITEFUNC_ERROR : len;
    }
    if (t->ex.sink && t->on_done) {
      const size_t taken = t->owner->stream_body(t, {data, len});
      if (taken != 0) return taken;
      if (t->sink_state == SinkState::Active) return CURL_WRITEFUNC_ERROR;
    }
    // The decoded size counts (curl hands over what gzip, br or zstd expand to).
    const std::size_t limit = t->ex.max_response_bytes != 0
                                  ? t->ex.max_response_bytes
                                  : t->owner->config_.stream.max_response_bytes;
    if (len > limit - std::min(limit, t->body.size())) {
      t->abort_error = make_error(
          ErrorCode::BadResponse,
          fmt::format("the response body is larger than GLMPROXY_MAX_RESPONSE_BYTES={} bytes "
                      "(after decoding{})",
                      t->owner->config_.stream.max_response_bytes,
                      limit == t->owner->config_.stream.max_response_bytes
                          ? ""
                          : fmt::format("; {} bytes for this merged call", limit)));
      return CURL_WRITEFUNC_ERROR;
    }
    if (t->body.size() + len > t->body.capacity()) {
      // Grow by doubling, but never past the limit: memory stays near the cap.
      t->body.reserve(std::min(limit, std::max(t->body.size() + len, 2 * t->body.capacity())));
    }
    t->got_response = true;
    t->body.append(data, len);
    return len;
  }

  static size_t on_header(char* data, size_t size, size_t n, void* user) {
    // Called by libcurl: nothing may unwind through it.
    try {
      return header_line(static_cast<Transfer*>(user), data, size * n);
    } catch (...) {
      static_cast<Transfer*>(user)->abort_error =
          make_error(ErrorCode::Internal, "out of memory");  // fits SSO: allocates nothing
      return 0;
    }
  }

  static size_t header_line(Transfer* t, char* data, size_t len) {
    std::string_view line(data, len);
    t->header_bytes += len;
    if (t->header_bytes > kMaxHeaderBytes) {
      t->abort_error =
          make_error(ErrorCode::BadResponse,
                     fmt::format("the response headers are larger than {} bytes", kMaxHeaderBytes));
      return 0;
    }
    t->got_response = true;
    if (t->ex.sink) t->last_rx = Clock::now();  // the stream idle timeout
    if (line.starts_with("HTTP/")) {
      t->headers.clear();  // a new response (after 1xx) starts
      t->header_bytes = len;
      return len;
    }
    const auto colon = line.find(':');
    if (colon != std::string_view::npos) {
      const std::string_view name = trim(line.substr(0, colon));
      if (t->ex.keep_all_headers || iequals(name, "content-type") || iequals(name, "retry-after") ||
          iequals(name, "retry-after-ms")) {
        t->headers.emplace_back(lower(name), std::string(trim(line.substr(colon + 1))));
      }
    }
    return len;
  }

  void drain_done() {
    int left = 0;
    while (CURLMsg* msg = curl_multi_info_read(multi_, &left)) {
      if (msg->msg != CURLMSG_DONE) continue;
      Transfer* t = nullptr;
      curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &t);
      if (t != nullptr) finish(t, msg->data.result);
    }
  }

  void release_easy(Transfer* t) {
    CURL* e = t->easy;
    detach_easy(t);
    free_easy_.push_back(e);
  }

  // Takes the attempt off the wire and frees its slot (allocates nothing).
  void detach_easy(Transfer* t) noexcept {
    curl_multi_remove_handle(multi_, t->easy);
    t->easy = nullptr;
    if (t->slot_released) {
      --reading_out_;
      reading_out_now_.store(reading_out_, std::memory_order_relaxed);
    } else {
      --in_flight_;
      // Published before the transfer's callback runs: a caller answered by it sees its slot
      // free.
      in_flight_now_.store(in_flight_, std::memory_order_relaxed);
    }
    auto it = std::find(active_.begin(), active_.end(), t);
    if (it != active_.end()) active_.erase(it);
  }

  // finish_owned(), and should it throw (out of memory), the request is still answered once.
  void finish(Transfer* raw, CURLcode code) {
    TransferPtr t(raw);
    try {
      finish_owned(t, code);
    } catch (...) {
      if (t && t->easy != nullptr) {
        CURL* e = t->easy;
        detach_easy(t.get());
        curl_easy_cleanup(e);  // not back to the free list, whose growth may be what failed
      }
      if (t && t->on_done)
        invoke(*t, Result<HttpResult>(make_error(ErrorCode::Internal, "out of memory")));
    }
  }

  void finish_owned(TransferPtr& t, CURLcode code) {
    curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &t->status);
    curl_off_t connect_us = 0, pretransfer_us = 0;
    curl_easy_getinfo(t->easy, CURLINFO_CONNECT_TIME_T, &connect_us);
    curl_easy_getinfo(t->easy, CURLINFO_PRETRANSFER_TIME_T, &pretransfer_us);
    // A reused connection has no connect time of its own: the request going out says it had one.
    const bool connected = connect_us > 0 || pretransfer_us > 0;
    long new_connections = 0;
    curl_easy_getinfo(t->easy, CURLINFO_NUM_CONNECTS, &new_connections);
    if (new_connections > 0) {  // a reused connection had its handshake already
      curl_off_t tls_us = 0;
      curl_easy_getinfo(t->easy, CURLINFO_APPCONNECT_TIME_T, &tls_us);
      if (tls_us > 0) tls_handshakes_.fetch_add(1, std::memory_order_relaxed);
    }
    account(*t);
    release_easy(t.get());
    const auto now = Clock::now();
    last_activity_ = now;
    // A non-2xx answer is read once, for the limiter and for the retry decision.
    const int status = static_cast<int>(t->status);
    std::optional<Error> answer;
    if (code == CURLE_OK && !t->abort_error && (status < 200 || status >= 300) &&
        (t->ex.retry_on_status || status == 429)) {
      answer = map_error_response(
          t->ex.protocol, status, t->body, find_header(t->headers, "retry-after"),
          find_header(t->headers, "retry-after-ms"), std::chrono::system_clock::now());
    }
    report_outcome(*t, code, now, answer ? &*answer : nullptr);

    if (!t->on_done) {
      // Already answered (a cancelled stream), or a keep-alive probe.
      if (t->draining && code == CURLE_OK && !t->abort_error && !t->finished_early) {
        drained_kept_.fetch_add(1, std::memory_order_relaxed);
      }
      return;
    }
    const bool streaming = t->sink_state == SinkState::Active;
    if (t->abort_error) {
      Error e = std::move(*t->abort_error);
      // An error event inside a stream (e.g. overloaded) before anything reached the caller:
      // the upstream did not answer this request, so asking again is safe.
      if (streaming && !t->ex.sink->delivered() && e.code != ErrorCode::Timeout && e.retryable()) {
        retry_or_resolve(std::move(t), std::move(e), now);
      } else {
        resolve(*t, std::move(e));
      }
      return;
    }
    if (streaming && code != CURLE_OK) {
      if (!t->ex.sink->on_end()) return resolve_ok(*t);  // the end marker had arrived
      Error e = transport_error(*t, code, connected, now);
      if (e.code != ErrorCode::Timeout) {
        const std::string detail = t->errbuf[0] != '\0' ? t->errbuf : curl_easy_strerror(code);
        e = make_error(
            ErrorCode::BadResponse,
            fmt::format("the stream was cut: {} after {}", detail, t->ex.sink->progress()),
            static_cast<int>(t->status));
      }
      return resolve(*t, std::move(e));
    }
    if (code != CURLE_OK) {
      Error e = transport_error(*t, code, connected, now);
      // Retry only what never produced a response: the request may not have been processed.
      if (!t->got_response && e.retryable()) {
        retry_or_resolve(std::move(t), std::move(e), now);
      } else {
        resolve(*t, std::move(e));
      }
      return;
    }
    if (t->ex.sink && status >= 200 && status < 300) {
      if (t->sink_state == SinkState::Undecided) {
        t->sink_state = SinkState::Active;  // a 2xx without a body
        t->ex.sink->begin(pool_, find_header(t->headers, "content-type"));
      }
      if (auto end = t->ex.sink->on_end()) {
        Error e = std::move(*end);
        if (e.http_status == 0) e.http_status = status;
        return resolve(*t, std::move(e));
      }
      return resolve_ok(*t);
    }
    if (t->ex.retry_on_status && answer && answer->retryable()) {
      retry_or_resolve(std::move(t), std::move(*answer), now, /*final_result=*/true);
      return;
    }
    resolve_ok(*t);
  }

  Error transport_error(const Transfer& t, CURLcode code, bool connected,
                        Clock::time_point now) const {
    const std::string detail = t.errbuf[0] != '\0' ? t.errbuf : curl_easy_strerror(code);
    if (code == CURLE_OPERATION_TIMEDOUT) {
      // curl's own clock may fire a few ms before ours says the deadline passed.
      if (now + kDeadlineSlack >= t.deadline) return total_timeout_error(t);
      if (!connected) {
        Error e = make_error(
            ErrorCode::Timeout,
            fmt::format("connect timeout: no connection within GLMPROXY_CONNECT_TIMEOUT_MS={} ms"
                        " ({})",
                        config_.timeouts.connect.count(), detail));
        return e;
      }
      return total_timeout_error(t);
    }
    switch (code) {
      case CURLE_URL_MALFORMAT:
      case CURLE_UNSUPPORTED_PROTOCOL:
        // No retry can fix the URL itself.
        return make_error(ErrorCode::InvalidArgument,
                          fmt::format("the request URL was refused: {} (curl {})", detail,
                                      static_cast<int>(code)));
      case CURLE_COULDNT_RESOLVE_HOST:
      case CURLE_COULDNT_RESOLVE_PROXY:
      case CURLE_COULDNT_CONNECT:
      case CURLE_SSL_CONNECT_ERROR:
      case CURLE_SEND_ERROR:
      case CURLE_RECV_ERROR:
      case CURLE_GOT_NOTHING:
        return make_error(
            ErrorCode::ConnectionFailed,
            fmt::format("connection failed: {} (curl {})", detail, static_cast<int>(code)));
      case CURLE_PARTIAL_FILE:
        return make_error(
            ErrorCode::BadResponse,
            fmt::format("the upstream closed the connection mid-response: {}", detail),
            static_cast<int>(t.status));
      // Certificate problems: the next handshake meets the same certificate (or CA file).
      case CURLE_PEER_FAILED_VERIFICATION:
      case CURLE_SSL_CACERT_BADFILE:
      case CURLE_SSL_CERTPROBLEM:
      case CURLE_SSL_ISSUER_ERROR:
      case CURLE_SSL_CRL_BADFILE:
      case CURLE_SSL_PINNEDPUBKEYNOTMATCH: {
        Error e = make_error(
            ErrorCode::ConnectionFailed,
            fmt::format("the {} TLS certificate could not be verified: {} (curl {}); "
                        "not retried. To trust its certificate authority set GLMPROXY_CA_FILE "
                        "(a PEM bundle) or GLMPROXY_CA_PATH (a directory hashed by openssl "
                        "rehash); now GLMPROXY_CA_FILE=\"{}\" GLMPROXY_CA_PATH=\"{}\"",
                        is_https(config_.upstream.proxy) ? "upstream's (or the HTTPS proxy's)"
                                                         : "upstream's",
                        detail, static_cast<int>(code), config_.upstream.ca_file,
                        config_.upstream.ca_path));
        e.upstream_code = std::string(kTlsCertificateCode);
        return e;
      }
      default:
        return make_error(ErrorCode::ConnectionFailed, fmt::format("transfer failed: {} (curl {})",
                                                                   detail, static_cast<int>(code)));
    }
  }

  // Full-jitter exponential backoff, or the upstream's Retry-After when it gave one.
  void retry_or_resolve(TransferPtr t, Error e, Clock::time_point now, bool final_result = false) {
    const auto& retry = config_.retry;
    auto give_up = [&](Error error) {
      if (final_result) {
        resolve_ok(*t);  // the last HTTP answer is the result; the caller maps it
      } else {
        resolve(*t, std::move(error));
      }
    };
    // Answers to our own excess concurrency (429/1302) do not use up attempts: the limiter has
    // already cut the concurrency, and the request was not processed. The deadline still holds.
    constexpr int kMaxFreeRetries = 20;
    const int counted = t->attempts - std::min(t->free_retries, kMaxFreeRetries);
    if (counted >= retry.max_attempts) return give_up(std::move(e));
    std::chrono::milliseconds delay;
    if (e.retry_after) {
      if (*e.retry_after > retry.retry_after_cap) return give_up(std::move(e));
      delay = *e.retry_after;
    } else {
      delay = backoff_delay(retry, t->attempts, rng_);
    }
    if (now + delay >= t->deadline) return give_up(std::move(e));
    t->retry_at = now + delay;
    t->last_failure = e.describe();
    // The last attempt's status is not this request's: an error while it waits (an open
    // breaker, the pool) must not carry it.
    t->status = 0;
    delayed_.push(std::move(t));
  }

  void resolve_ok(Transfer& t) {
    HttpResult r;
    r.status = static_cast<int>(t.status);
    r.headers = std::move(t.headers);
    r.body = std::move(t.body);
    r.attempts = t.attempts;
    invoke(t, Result<HttpResult>(std::move(r)));
  }

  void resolve(Transfer& t, Error e) {
    // Every error after a status line carries the status that arrived (a size cap, a reset
    // after the headers, a malformed event inside a 200 stream).
    if (e.http_status == 0 && t.status > 0) e.http_status = static_cast<int>(t.status);
    invoke(t, Result<HttpResult>(std::move(e)));
  }

  static void invoke(Transfer& t, Result<HttpResult> r) {
    TransferCallback cb = std::move(t.on_done);
    t.on_done = nullptr;
    if (!cb) return;
    if (t.ex.sink) t.ex.sink->release();
    try {
      cb(std::move(r));
    } catch (...) {
      // A throwing user callback must not take the I/O thread down.
    }
  }

  void shutdown() {
    std::vector<TransferPtr> rest;
    {
      std::lock_guard lock(mu_);
      rest.swap(incoming_);
    }
    for (auto& t : local_) rest.push_back(std::move(t));
    local_.clear();
    resolve_shutting_down(rest);
    for (auto& t : waiting_)
      resolve(*t, make_error(ErrorCode::ShuttingDown, "the client is shutting down"));
    waiting_.clear();
    while (!delayed_.empty()) {
      TransferPtr t = std::move(const_cast<TransferPtr&>(delayed_.top()));
      delayed_.pop();
      resolve(*t, make_error(ErrorCode::ShuttingDown, "the client is shutting down"));
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
      std::vector<TransferPtr> more;
      more.swap(local_);
      resolve_shutting_down(more);
    }
  }

  void resolve_shutting_down(std::vector<TransferPtr>& transfers) {
    for (auto& t : transfers) {
      if (t->task) {
        run_task(*t);
      } else {
        resolve(*t, make_error(ErrorCode::ShuttingDown, "the client is shutting down"));
      }
    }
    transfers.clear();
  }

  Config config_;
  CURLM* multi_ = nullptr;
  CURLSH* share_ = nullptr;
  std::thread thread_;
  std::thread::id thread_id_;

  std::mutex mu_;
  std::vector<TransferPtr> incoming_;  // guarded by mu_
  bool stopping_ = false;              // guarded by mu_
  bool sleeping_ = false;              // guarded by mu_: the I/O thread is in (or at) its poll
  std::vector<TransferPtr> local_;     // I/O thread only: submitted by its own callbacks

  // I/O thread only.
  std::deque<TransferPtr> waiting_;
  std::priority_queue<TransferPtr, std::vector<TransferPtr>, RetryLater> delayed_;
  std::vector<Transfer*> active_;  // owned while on the wire
  std::vector<Transfer*> aborted_;
  std::vector<CURL*> free_easy_;
  int in_flight_ = 0;    // transfers on the wire holding a slot
  int reading_out_ = 0;  // answered streams still on the wire (slot_released)
  std::mt19937_64 rng_;
  Clock::time_point last_activity_ = Clock::now();
  const std::string* keepalive_url_ = nullptr;  // the base URL (config_) last sent to
  BufferPool pool_;                             // stream buffers (I/O thread; stats from anywhere)
  std::atomic<std::uint64_t> upload_reads_{0};
  std::atomic<std::uint64_t> body_reads_{0};
  std::atomic<std::uint64_t> loop_turns_{0}, wakeups_{0}, easy_created_{0};
  std::atomic<bool> cancel_poked_{false};  // poke(): a stream's consumer asked to cancel
  std::atomic<std::uint64_t> streams_cancelled_{0};
  std::atomic<std::uint64_t> drained_kept_{0};
  AimdLimiter aimd_;        // I/O thread
  CircuitBreaker breaker_;  // I/O thread
  std::atomic<std::uint64_t> aimd_decreases_{0}, breaker_opened_{0}, breaker_rejections_{0};
  const int aimd_max_;  // each model's starting and highest limit
  mutable std::mutex limits_mu_;
  std::map<std::string, int> model_limits_;  // guarded by limits_mu_: models below aimd_max_
  // Pool and traffic figures for stats().
  std::atomic<int> in_flight_now_{0}, reading_out_now_{0}, open_sockets_{0};
  std::atomic<std::size_t> waiting_now_{0};
  std::atomic<std::uint64_t> sockets_opened_{0}, attempts_{0}, retries_{0};
  std::atomic<std::uint64_t> tls_handshakes_{0};
  std::atomic<std::uint64_t> bytes_sent_{0}, bytes_received_{0};
  LatencyHistogram acquire_wait_;  // with METRICS_ENABLED
};

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

void Transport::submit(HttpExchange exchange, TransferCallback on_done) {
  if (exchange.marks) exchange.marks->submitted = Clock::now();
  std::vector<TransferPtr> one;
  one.push_back(std::make_unique<Transfer>());
  one.back()->ex = std::move(exchange);
  one.back()->on_done = std::move(on_done);
  impl_->submit(std::move(one));
}

void Transport::submit_batch(std::vector<std::pair<HttpExchange, TransferCallback>> exchanges) {
  std::vector<TransferPtr> batch;
  batch.reserve(exchanges.size());
  const auto now = Clock::now();
  for (auto& [exchange, on_done] : exchanges) {
    if (exchange.marks) exchange.marks->submitted = now;
    batch.push_back(std::make_unique<Transfer>());
    batch.back()->ex = std::move(exchange);
    batch.back()->on_done = std::move(on_done);
  }
  impl_->submit(std::move(batch));
}

void Transport::post(std::function<void()> task) {
  std::vector<TransferPtr> one;
  one.push_back(std::make_unique<Transfer>());
  one.back()->task = std::move(task);
  impl_->submit(std::move(one));
}

void Transport::fail(Error error, TransferCallback on_done) {
  std::vector<TransferPtr> one;
  one.push_back(std::make_unique<Transfer>());
  one.back()->preset_error = std::move(error);
  one.back()->on_done = std::move(on_done);
  impl_->submit(std::move(one));
}

bool Transport::on_io_thread() const noexcept { return impl_->on_io_thread(); }

void Transport::poke() noexcept { impl_->poke(); }

void Transport::stop() { impl_->stop(); }

TransportStats Transport::stats() const noexcept { return impl_->stats(); }

Result<void> Transport::warm(const std::string& url, int n, std::chrono::milliseconds timeout) {
  if (n <= 0) return {};
  // Submitted as one batch so they are on the wire at once, each on its own connection.
  std::vector<std::future<Result<HttpResult>>> waits;
  std::vector<TransferPtr> batch;
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
