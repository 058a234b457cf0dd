// The driver at an attempt's end: curl's verdict read, the attempt taken off the wire, the
// admission queue told how it went, then a retry (retry_policy) or the exchange's answer.

#include <algorithm>

#include "protocol/errors.hpp"
#include "protocol/protocol.hpp"
#include "transport/driver.hpp"
#include "transport/retry_policy.hpp"

namespace glmproxy::detail {

void Transport::Impl::drain_done() {
  int left = 0;
  while (CURLMsg* msg = curl_multi_info_read(multi_, &left)) {
    if (msg->msg != CURLMSG_DONE) continue;
    Transfer* t = nullptr;
    curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &t);
    if (t != nullptr) finish(t, msg->data.result);
  }
}

void Transport::Impl::release_easy(Transfer* t) {
  CURL* e = t->easy;
  detach_easy(t);
  free_easy_.push_back(e);
}

// Takes the attempt off the wire and frees its slot (allocates nothing).
void Transport::Impl::detach_easy(Transfer* t) noexcept {
  curl_multi_remove_handle(multi_, t->easy);
  t->easy = nullptr;
  if (t->state == TransferState::ReadingOut) {
    --reading_out_;
    reading_out_now_.store(reading_out_, std::memory_order_relaxed);
  } else {
    --in_flight_;
    // Published before the transfer's callback runs: a caller answered by it sees its slot free.
    in_flight_now_.store(in_flight_, std::memory_order_relaxed);
  }
  auto it = std::find(active_.begin(), active_.end(), t);
  if (it != active_.end()) active_.erase(it);
}

// finish_owned(), and should it throw (out of memory), the request is still answered once.
void Transport::Impl::finish(Transfer* raw, CURLcode code) {
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

// Bytes on the wire and, when profiled, curl's phase timings of the attempt that just ended.
void Transport::Impl::account(Transfer& t) {
  // A transfer already answered (a cancelled stream) had its marks filled then: its caller may
  // be reading them now.
  const bool marks = t.ex.marks != nullptr && t.on_done;
  const bool count = config_.metrics.enabled && !t.probe;
  if (!count && !marks) return;
  const WireBytes bytes = wire_bytes(t.easy, t.ex.body.size(), config_.stream.request_chunk_size);
  if (count) wire_.add(bytes);
  if (marks) fill_marks(*t.ex.marks, t.easy, t.attempt_start, t.attempts, t.got_response, bytes);
}

// A curl timeout this close to the request's deadline is the total timeout (curl's clock and
// ours differ by a few ms).
constexpr std::chrono::milliseconds kDeadlineSlack{50};

CurlFailure Transport::Impl::failure_of(const Transfer& t, CURLcode code, bool connected,
                                        Clock::time_point now) const {
  return CurlFailure{.code = code,
                     .errbuf = t.errbuf[0] != '\0' ? std::string_view(t.errbuf) : "",
                     .connected = connected,
                     // curl's own clock may fire a few ms before ours says the deadline passed.
                     .past_deadline = now + kDeadlineSlack >= t.deadline,
                     .status = static_cast<int>(t.status),
                     .total = total_timeout_of(t, config_.timeouts.total)};
}

void Transport::Impl::finish_owned(TransferPtr& t, CURLcode code) {
  curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &t->status);
  curl_off_t connect_us = 0, pretransfer_us = 0;
  curl_easy_getinfo(t->easy, CURLINFO_CONNECT_TIME_T, &connect_us);
  curl_easy_getinfo(t->easy, CURLINFO_PRETRANSFER_TIME_T, &pretransfer_us);
  // A reused connection has no connect time of its own: the request going out says it had one.
  const bool connected = connect_us > 0 || pretransfer_us > 0;
  if (made_tls_handshake(t->easy)) wire_.tls_handshakes.fetch_add(1, std::memory_order_relaxed);
  account(*t);
  release_easy(t.get());
  const auto now = Clock::now();
  keep_alive_.on_activity(now);
  // A non-2xx answer is read once, for the limiter and for the retry decision.
  const int status = static_cast<int>(t->status);
  std::optional<Error> answer;
  if (code == CURLE_OK && !t->abort_error && (status < 200 || status >= 300) &&
      reads_error_answer(status, t->ex.retry_on_status)) {
    answer = map_error_response(
        t->ex.protocol, status, t->body, find_header(t->headers, "retry-after"),
        find_header(t->headers, "retry-after-ms"), std::chrono::system_clock::now());
  }
  admission_.on_attempt_end(
      *t, {.answered = code == CURLE_OK || t->got_response, .answer = answer ? &*answer : nullptr},
      now);

  if (!t->on_done) {
    // Already answered (a cancelled or finished stream), or a keep-alive probe.
    if (t->draining() && code == CURLE_OK && !t->abort_error && !t->finished_early) {
      drained_kept_.fetch_add(1, std::memory_order_relaxed);
    }
    t->state = TransferState::Done;
    return;
  }
  const bool streaming = t->sink_state == SinkState::Active;
  if (t->abort_error) {
    Error e = std::move(*t->abort_error);
    // An error event inside a stream (e.g. overloaded) before anything reached the caller: the
    // upstream did not answer this request, so asking again is safe.
    if (streaming && !t->ex.sink->delivered() && e.code != ErrorCode::Timeout && e.retryable()) {
      retry_or_resolve(std::move(t), std::move(e), now);
    } else {
      resolve(*t, std::move(e));
    }
    return;
  }
  if (streaming && code != CURLE_OK) {
    if (!t->ex.sink->on_end()) return resolve_ok(*t);  // the end marker had arrived
    const CurlFailure failure = failure_of(*t, code, connected, now);
    Error e = curl_error(failure, config_);
    if (e.code != ErrorCode::Timeout) e = stream_cut_error(failure, t->ex.sink->progress());
    return resolve(*t, std::move(e));
  }
  if (code != CURLE_OK) {
    Error e = curl_error(failure_of(*t, code, connected, now), config_);
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

// Full-jitter exponential backoff, or the upstream's Retry-After when it gave one; with
// `final_result` the last HTTP answer is the result when giving up (the caller maps it).
void Transport::Impl::retry_or_resolve(TransferPtr t, Error e, Clock::time_point now,
                                       bool final_result) {
  const RetryDecision decision = decide_retry(config_.retry,
                                              {.error = e,
                                               .attempts = t->attempts,
                                               .free_retries = t->free_retries,
                                               .deadline = t->deadline,
                                               .now = now},
                                              rng_);
  if (!decision.retry()) {
    if (final_result) return resolve_ok(*t);
    return resolve(*t, std::move(e));
  }
  t->retry_at = decision.at;
  t->last_failure = e.describe();
  // The last attempt's status is not this request's: an error while it waits (an open breaker,
  // the pool) must not carry it.
  t->status = 0;
  t->state = TransferState::Backoff;
  delayed_.push(std::move(t));
}

void Transport::Impl::resolve_ok(Transfer& t) {
  HttpResult r;
  r.status = static_cast<int>(t.status);
  r.headers = std::move(t.headers);
  r.body = std::move(t.body);
  r.attempts = t.attempts;
  invoke(t, Result<HttpResult>(std::move(r)));
}

void Transport::Impl::resolve(Transfer& t, Error e) {
  // Every error after a status line carries the status that arrived (a size cap, a reset after
  // the headers, a malformed event inside a 200 stream).
  if (e.http_status == 0 && t.status > 0) e.http_status = static_cast<int>(t.status);
  invoke(t, Result<HttpResult>(std::move(e)));
}

void Transport::Impl::invoke(Transfer& t, Result<HttpResult> r) {
  if (!t.on_done) return;
  if (t.state != TransferState::ReadingOut) t.state = TransferState::Done;
  if (t.ex.sink) t.ex.sink->release();
  answer(t.on_done, std::move(r));
}

void Transport::Impl::answer(TransferCallback& on_done, Result<HttpResult> r) {
  TransferCallback cb = std::move(on_done);
  on_done = nullptr;
  if (!cb) return;
  try {
    cb(std::move(r));
  } catch (...) {
    // A throwing user callback must not take the I/O thread down.
  }
}

void Transport::Impl::run_task(std::function<void()>& task) {
  std::function<void()> run = std::move(task);
  try {
    if (run) run();
  } catch (...) {
    // A throwing user callback must not take the I/O thread down.
  }
}

}  // namespace glmproxy::detail
