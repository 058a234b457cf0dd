// Who drives the loop (docs/transport.md, Threads): the I/O thread's park-and-drive cycle, one
// turn of the loop, and a blocking caller leading it (lead(), lead_again()), handing it back or
// lending it to a stream's consumer.

#include <algorithm>
#include <optional>

#include "transport/driver.hpp"

namespace glmproxy::detail {

void Transport::Impl::run() {
  // The next keep-alive check while parked: at least once a second, as a caller's requests
  // (which this thread does not see) may have made one due.
  Clock::time_point wake_at = Clock::now() + std::chrono::seconds(1);
  for (;;) {
    {
      // Parked until the loop is undriven and has work, or the keep-alive check is due.
      std::unique_lock lock(mu_);
      const auto ready = [this] {
        return !driven_ && (pending_ || stopping_ || !incoming_.empty());
      };
      const bool woken = park_cv_.wait_until(lock, wake_at, ready);
      if (!woken && driven_) {
        // Due while a caller drives: its turns run the timers. Look again later.
        wake_at = Clock::now() + std::chrono::seconds(1);
        continue;
      }
      driven_ = true;
      pending_ = false;
    }
    driver_.store(std::this_thread::get_id(), std::memory_order_relaxed);
    take_over(Clock::now());
    Turn t = Turn::Busy;
    while (t == Turn::Busy) {
      // An exception (out of memory) must not end the thread, which would leave every request
      // unanswered: the next turn tries again.
      try {
        t = turn();
      } catch (...) {
        t = Turn::Busy;
      }
    }
    if (t == Turn::Stop) break;
    wake_at = Clock::now() + std::chrono::seconds(1);
    if (const auto check = keep_alive_.next_check(true)) wake_at = std::min(wake_at, *check);
    driver_.store(std::thread::id{}, std::memory_order_relaxed);
    std::lock_guard lock(mu_);
    driven_ = false;
    // What was submitted after the last turn looked (the submitter saw the loop driven).
    pending_ = !incoming_.empty() || stopping_;
  }
  shutdown();  // the loop stays driven: nobody leads once stopping
  driver_.store(std::thread::id{}, std::memory_order_relaxed);
}

// One turn of the loop on the driver: submissions in, timers, curl, completions, admission, then
// a poll while anything is on the wire. Idle: nothing is (the I/O thread parks instead of
// polling); Stop: stop() was called.
Transport::Impl::Turn Transport::Impl::turn() {
  loop_turns_.fetch_add(1, std::memory_order_relaxed);
  std::vector<Submission> batch;
  bool stop = false;
  {
    std::lock_guard lock(mu_);
    batch.swap(incoming_);
    stop = stopping_;
    sleeping_ = false;
  }
  const auto now = Clock::now();
  accept(batch, now);
  if (stop) return Turn::Stop;
  if (poked_.exchange(false, std::memory_order_acq_rel)) cancel_requested_streams();
  step(now);
  int still_running = 0;
  curl_multi_perform(multi_, &still_running);
  drain_done();
  // What the callbacks just submitted starts now, without a trip through poll. Once per
  // turn: callbacks that keep submitting (a chain of cache hits, an instant retry of a
  // refusal) are taken on the next turn, after the timers, the transfers and `stop`.
  if (!local_.empty()) {
    std::vector<Submission> mine;
    mine.swap(local_);
    accept(mine, Clock::now());
  }
  admit(Clock::now());
  waiting_now_.store(admission_.size(), std::memory_order_relaxed);
  if (idle()) return Turn::Idle;
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
  return Turn::Busy;
}

void Transport::Impl::lead(std::vector<Submission> work, const std::function<bool()>& enough,
                           const std::function<bool()>* lend) {
  // The I/O thread parked (nobody drives): this thread drives.
  if (enqueue(work, /*take=*/true) == Queued::Taken) drive(enough, lend);
}

bool Transport::Impl::lead_again(const std::function<bool()>& enough,
                                 const std::function<bool()>* lend) {
  {
    std::lock_guard lock(mu_);
    if (driven_ || stopping_) return false;
    driven_ = true;
  }
  drive(enough, lend);
  return true;
}

// This thread took the loop (lead(), lead_again()): turns until `enough()`, then hands it back.
void Transport::Impl::drive(const std::function<bool()>& enough,
                            const std::function<bool()>* lend) {
  driver_.store(std::this_thread::get_id(), std::memory_order_relaxed);
  take_over(Clock::now());
  // The turns this thread drives carry out everything on the wire, not only its own request;
  // an exception (out of memory) ends its lead, and the I/O thread takes over.
  try {
    while (!enough()) {
      if (turn() != Turn::Busy) break;
    }
  } catch (...) {
  }
  // Lent: the caller's own stream is all that is on the wire, and the caller will drive it again
  // after its on_event (lead_again()); nobody is woken meanwhile.
  bool lent = false;
  try {
    lent = lend != nullptr && (*lend)() && in_flight_ + reading_out_ <= 1 && admission_.empty() &&
           delayed_.empty() && local_.empty();
  } catch (...) {
  }
  hand_back(lent);
}

// A leading caller is done: the loop is undriven again. Work left on it (other requests that
// arrived meanwhile, a stream still on the wire, read-outs) wakes the I/O thread to take over,
// unless the loop is lent (the only thing left is the caller's own stream, which it goes on
// driving after its on_event); then a submission wakes the I/O thread as usual.
void Transport::Impl::hand_back(bool lent) {
  const bool left = !idle();
  if (lent) lent_at_ = Clock::now();
  driver_.store(std::thread::id{}, std::memory_order_relaxed);
  bool wake = false;
  {
    std::lock_guard lock(mu_);
    driven_ = false;
    sleeping_ = false;
    pending_ = (left && !lent) || !incoming_.empty() || stopping_;
    wake = pending_;
  }
  if (wake) park_cv_.notify_one();
}

// A thread took the loop. If it was lent, nobody read the streams on the wire meanwhile: their
// idle time restarts now (GLMPROXY_STREAM_IDLE_TIMEOUT_MS counts the upstream's silence, not the
// time a consumer spent in its on_event).
void Transport::Impl::take_over(Clock::time_point now) {
  if (!lent_at_) return;
  lent_at_.reset();
  for (Transfer* t : active_) {
    if (t->ex.sink) t->last_rx = std::max(t->last_rx, now);
  }
}

// Nothing on the wire, waiting, backing off or submitted by a callback.
bool Transport::Impl::idle() const noexcept {
  return in_flight_ + reading_out_ == 0 && admission_.empty() && delayed_.empty() && local_.empty();
}

}  // namespace glmproxy::detail
