#pragma once

// The transport's driver: the loop over a libcurl multi handle (driven by the I/O thread or a
// blocking caller) and what it carries out — submissions taken in, admission decisions
// (AdmissionQueue), attempts set up (easy_setup) and put on the wire, timers, streams answered
// early, completions, retries (retry_policy), errors (curl_errors), wire counters (wire_stats) and
// keep-alive probes (keep_alive). Its member functions are defined in driving.cpp (who drives: the
// I/O thread parked or driving, a blocking caller leading, one turn of the loop), transport.cpp
// (submissions, shutdown, the public Transport), attempts.cpp (admission, attempts on the wire,
// timers, streams) and completion.cpp (an attempt's end: retry or answer). Internal to
// src/transport/.

#include <curl/curl.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <queue>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "buffer/buffer_pool.hpp"
#include "core/histogram.hpp"
#include "glmproxy/config.hpp"
#include "transport/admission_queue.hpp"
#include "transport/curl_callbacks.hpp"
#include "transport/curl_errors.hpp"
#include "transport/keep_alive.hpp"
#include "transport/transfer.hpp"
#include "transport/transport.hpp"
#include "transport/wire_stats.hpp"

namespace glmproxy::detail {

/// Who drives the loop (docs/transport.md, Threads): one thread at a time, the driver, runs its
/// turns and owns everything below marked "driver only". That is the I/O thread, or a blocking
/// caller that found the loop undriven (lead()): it drives until its own request is answered,
/// then hands the loop back, waking the I/O thread only if work is left. The I/O thread parks
/// (on park_cv_, not in curl's poll) while nothing is on the wire or waiting.
///
/// Thread safety: submit(), lead(), poke(), on_io_thread() and stats() from any thread; stop()
/// from any thread but the driver; everything else on the driver.
class Transport::Impl final : private StreamReceiver {
 public:
  using Clock = std::chrono::steady_clock;

  explicit Impl(const Config& config);
  ~Impl() override;  ///< stop(), then frees curl's handles

  Result<void> start();
  void stop();
  /// Hands work to the I/O thread together (transfers start in the same loop iteration).
  void submit(std::vector<Submission> work);
  /// Submits `work`; when nobody drives the loop, drives it on this thread until `enough()` (or
  /// until nothing is left on the wire), then hands it back (lent when `*lend` says so and
  /// nothing else is left). Not from the driver.
  void lead(std::vector<Submission> work, const std::function<bool()>& enough,
            const std::function<bool()>* lend);
  /// Drives the loop as lead() does if nobody drives it; false (at once) if somebody does.
  bool lead_again(const std::function<bool()>& enough, const std::function<bool()>* lend);
  void poke() noexcept;
  /// This thread drives the loop now (the I/O thread in a turn, or a leading caller).
  bool on_io_thread() const noexcept {
    return driver_.load(std::memory_order_relaxed) == std::this_thread::get_id();
  }
  TransportStats stats() const noexcept;

 private:
  struct RetryLater {
    bool operator()(const TransferPtr& a, const TransferPtr& b) const {
      return a->retry_at > b->retry_at;
    }
  };

  /// How a turn of the loop ended.
  enum class Turn { Busy, Idle, Stop };
  /// What enqueue() did: queued (the driver woken if it slept), queued with the loop taken by
  /// this thread, or answered here (stopping).
  enum class Queued { Queued, Taken, Answered };

  // transport.cpp: the loop.
  void run();
  Turn turn();
  bool idle() const noexcept;
  void drive(const std::function<bool()>& enough, const std::function<bool()>* lend);
  void hand_back(bool lent);
  void take_over(Clock::time_point now);
  void accept(std::vector<Submission>& work, Clock::time_point now);
  void answer_shutting_down(std::vector<Submission>& work);
  Queued enqueue(std::vector<Submission>& work, bool take);
  void shutdown();
  const std::string& base_of(const std::string& url) const noexcept;

  // attempts.cpp: admission, attempts on the wire, timers, streams.
  void step(Clock::time_point now);
  void update_first_byte_deadlines();
  int poll_timeout_ms(Clock::time_point now);
  void admit(Clock::time_point now);
  void start_attempt(TransferPtr t, Clock::time_point now);
  void release_slot(Transfer& t);
  void end_a_read_out_for_room();
  void cancel_requested_streams();
  std::size_t on_stream_body(Transfer& t, std::string_view chunk) override;
  bool answer_early(Transfer& t, bool finished);

  // completion.cpp: an attempt's end.
  void drain_done();
  void release_easy(Transfer* t);
  void detach_easy(Transfer* t) noexcept;
  void finish(Transfer* t, CURLcode code);
  void finish_owned(TransferPtr& t, CURLcode code);
  void account(Transfer& t);
  CurlFailure failure_of(const Transfer& t, CURLcode code, bool connected,
                         Clock::time_point now) const;
  void retry_or_resolve(TransferPtr t, Error e, Clock::time_point now, bool final_result = false);
  void resolve_ok(Transfer& t);
  void resolve(Transfer& t, Error e);
  static void invoke(Transfer& t, Result<HttpResult> r);
  static void answer(TransferCallback& on_done, Result<HttpResult> r);
  static void run_task(std::function<void()>& task);

  Config config_;
  CURLM* multi_ = nullptr;
  CURLSH* share_ = nullptr;
  std::thread thread_;
  std::atomic<std::thread::id> driver_{};  // the thread driving the loop now, if any

  std::mutex mu_;
  std::condition_variable park_cv_;   // the parked I/O thread waits here
  std::vector<Submission> incoming_;  // guarded by mu_
  bool stopping_ = false;             // guarded by mu_
  bool sleeping_ = false;             // guarded by mu_: the driver is in (or at) its poll
  bool driven_ = false;               // guarded by mu_: a thread drives the loop
  bool pending_ = false;              // guarded by mu_: a leading caller left work behind
  std::vector<Submission> local_;     // driver only: submitted by its own callbacks
  std::atomic<bool> poked_{false};    // a consumer asked for a stream to be cancelled

  // Driver only.
  std::optional<Clock::time_point> lent_at_;  // the loop was lent to a stream's consumer
  AdmissionQueue admission_;
  std::priority_queue<TransferPtr, std::vector<TransferPtr>, RetryLater> delayed_;  // Backoff
  std::vector<Transfer*> active_;  // owned while on the wire (OnWire, ReadingOut)
  std::vector<Transfer*> aborted_;
  std::vector<CURL*> free_easy_;
  int in_flight_ = 0;    // transfers on the wire holding a slot (OnWire)
  int reading_out_ = 0;  // answered streams still on the wire (ReadingOut)
  std::mt19937_64 rng_;
  KeepAlive keep_alive_;
  BufferPool pool_;  // stream buffers (I/O thread; stats from anywhere)
  CallbackEnv env_;
  WireCounters wire_;

  // Figures for stats().
  std::atomic<std::uint64_t> loop_turns_{0}, wakeups_{0}, easy_created_{0};
  std::atomic<std::uint64_t> streams_cancelled_{0}, drained_kept_{0};
  std::atomic<int> in_flight_now_{0}, reading_out_now_{0};
  std::atomic<std::size_t> waiting_now_{0};
  std::atomic<std::uint64_t> attempts_{0}, retries_{0};
  LatencyHistogram acquire_wait_;  // with METRICS_ENABLED
};

}  // namespace glmproxy::detail
