// The driver's attempts on the wire: admission decisions carried out, attempts started, the
// timers (pool waits, backoffs, first-byte, stream idle and read-out deadlines), streams
// answered before their transfer ends, and cancellations a consumer asked for (poke()).

#include <fmt/format.h>

#include <algorithm>

#include "transport/driver.hpp"
#include "transport/easy_setup.hpp"

namespace glmproxy::detail {

// Timers: pool waits, backoffs, first-byte deadlines, idle streams, read-outs, keep-alive.
void Transport::Impl::step(Clock::time_point now) {
  admit(now);  // what can start now does not time out
  admission_.expire(now, in_flight_, [this](AdmissionQueue::Decision d) {
    resolve(*d.transfer, std::move(d.error));
  });
  while (!delayed_.empty() && delayed_.top()->retry_at <= now) {
    TransferPtr t = std::move(const_cast<TransferPtr&>(delayed_.top()));
    delayed_.pop();
    admission_.push(std::move(t), now);
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
    if (t->draining()) {
      if (now >= *t->drain_deadline) {
        t->abort_error = make_error(ErrorCode::Cancelled, "stream cancelled");
        aborted_.push_back(t);
      }
    } else if (t->ex.sink && t->got_response && now - t->last_rx >= config_.timeouts.stream_idle) {
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
  for (Transfer* t : aborted_) finish(t, CURLE_OK);
  aborted_.clear();
  const bool idle = in_flight_ + reading_out_ == 0 && admission_.empty() && delayed_.empty();
  if (keep_alive_.due(now, idle)) {
    for (TransferPtr& probe : keep_alive_.probes(now)) admission_.push(std::move(probe), now);
  }
  admit(now);
}

void Transport::Impl::update_first_byte_deadlines() {
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

int Transport::Impl::poll_timeout_ms(Clock::time_point now) {
  update_first_byte_deadlines();
  Clock::time_point next = now + std::chrono::milliseconds(1000);
  if (const auto expiry = admission_.next_expiry()) next = std::min(next, *expiry);
  if (!delayed_.empty()) next = std::min(next, delayed_.top()->retry_at);
  if (const auto probe = keep_alive_.next_check(in_flight_ + reading_out_ == 0)) {
    next = std::min(next, *probe);
  }
  for (const Transfer* t : active_) {
    if (!t->got_response && t->first_byte_deadline) next = std::min(next, *t->first_byte_deadline);
    if (t->draining()) {
      next = std::min(next, *t->drain_deadline);
    } else if (t->ex.sink && t->got_response) {
      next = std::min(next, t->last_rx + config_.timeouts.stream_idle);
    }
  }
  auto ms = std::chrono::ceil<std::chrono::milliseconds>(next - now).count();
  return static_cast<int>(std::clamp<std::int64_t>(ms, 0, 1000));
}

void Transport::Impl::admit(Clock::time_point now) {
  admission_.admit(
      now, [this] { return in_flight_; },
      [this, now](AdmissionQueue::Decision d) {
        if (d.kind != AdmissionQueue::Decision::Kind::Admit) {
          resolve(*d.transfer, std::move(d.error));
          return;
        }
        end_a_read_out_for_room();
        if (config_.metrics.enabled && !d.transfer->probe) {
          acquire_wait_.record(
              std::chrono::duration_cast<std::chrono::microseconds>(now - d.transfer->queued_at));
        }
        start_attempt(std::move(d.transfer), now);
      });
}

void Transport::Impl::start_attempt(TransferPtr t, Clock::time_point now) {
  ++t->attempts;
  if (!t->probe) {
    attempts_.fetch_add(1, std::memory_order_relaxed);
    if (t->attempts > 1) retries_.fetch_add(1, std::memory_order_relaxed);
  }
  t->reset_attempt(now);
  CURL* e;
  if (!free_easy_.empty()) {
    e = free_easy_.back();
    free_easy_.pop_back();
    curl_easy_reset(e);
  } else {
    e = curl_easy_init();
    easy_created_.fetch_add(1, std::memory_order_relaxed);
  }
  // Nothing goes on the wire: the slots admit() took are given back.
  auto refuse = [&](Error error) {
    admission_.abandon(*t, now);
    resolve(*t, std::move(error));
  };
  if (e == nullptr) return refuse(make_error(ErrorCode::Internal, "curl_easy_init failed"));
  if (auto refused = setup_easy(e, *t, {config_, share_, &wire_, &env_}, now)) {
    free_easy_.push_back(e);
    return refuse(std::move(*refused));
  }
  active_.push_back(t.get());
  if (const CURLMcode rc = curl_multi_add_handle(multi_, e); rc != CURLM_OK) {
    active_.pop_back();
    free_easy_.push_back(e);
    return refuse(make_error(ErrorCode::Internal, fmt::format("curl_multi_add_handle failed: {}",
                                                              curl_multi_strerror(rc))));
  }
  t->easy = e;
  t->state = TransferState::OnWire;
  // Probes go to the configured base URL the client last used, never to a request's own path.
  keep_alive_.on_sent(&base_of(t->ex.url), t->probe);
  ++in_flight_;
  in_flight_now_.store(in_flight_, std::memory_order_relaxed);
  t.release();  // owned by active_ while on the wire
}

// A stream answered while its transfer stays on the wire (cancelled, or finished at its end
// marker, and now read out or wound down): its slots go back at once, before its caller is
// answered, so the next request need not wait for the read-out.
void Transport::Impl::release_slot(Transfer& t) {
  if (t.state == TransferState::ReadingOut) return;
  t.state = TransferState::ReadingOut;
  --in_flight_;
  ++reading_out_;
  in_flight_now_.store(in_flight_, std::memory_order_relaxed);
  reading_out_now_.store(reading_out_, std::memory_order_relaxed);
  // The status was 2xx (the body went to the stream): the upstream answered.
  admission_.release(t, ConcurrencyLimiter::Outcome::Success, Clock::now());
}

// A transfer about to start while read-outs hold connections: if curl's connection cap
// (POOL_MAX_CONNECTIONS) would make it wait for one, the oldest read-out ends now and its
// connection is closed. A read-out only keeps a connection nobody else needs.
void Transport::Impl::end_a_read_out_for_room() {
  if (reading_out_ == 0 || in_flight_ + reading_out_ < config_.pool.max_connections) return;
  for (Transfer* t : active_) {
    if (t->draining() && !t->abort_error) {
      t->abort_error = make_error(ErrorCode::Cancelled, "stream cancelled");
      finish(t, CURLE_OK);
      return;
    }
  }
}

// After poke(): every stream on the wire whose consumer asked for it to end is handled as if
// its sink's on_body() had said Cancel. One whose 2xx body has not begun has nothing to read
// out: it is closed.
void Transport::Impl::cancel_requested_streams() {
  std::vector<Transfer*> close;
  for (Transfer* t : active_) {
    if (t->state != TransferState::OnWire || !t->on_done || !t->ex.sink || t->abort_error ||
        !t->ex.sink->cancel_requested()) {
      continue;
    }
    if (t->sink_state == SinkState::Active) {
      if (!answer_early(*t, /*finished=*/false)) close.push_back(t);
    } else {
      streams_cancelled_.fetch_add(1, std::memory_order_relaxed);
      t->abort_error =
          make_error(ErrorCode::Cancelled, "the stream was cancelled by its on_event callback");
      close.push_back(t);
    }
  }
  for (Transfer* t : close) finish(t, CURLE_OK);
}

// A streamed body goes to the sink once the status says 2xx; everything else is buffered.
std::size_t Transport::Impl::on_stream_body(Transfer& t, std::string_view chunk) {
  if (t.sink_state == SinkState::Undecided) {
    long status = 0;
    curl_easy_getinfo(t.easy, CURLINFO_RESPONSE_CODE, &status);
    t.sink_state = status >= 200 && status < 300 ? SinkState::Active : SinkState::Unused;
    if (t.sink_state == SinkState::Active)
      t.ex.sink->begin(pool_, find_header(t.headers, "content-type"));
  }
  if (t.sink_state != SinkState::Active) return 0;  // buffer it
  const BodySink::Action action = t.ex.sink->on_body(chunk);
  switch (action) {
    case BodySink::Action::Continue:
      return chunk.size();
    case BodySink::Action::Fail:
      t.abort_error = t.ex.sink->error();
      return CURL_WRITEFUNC_ERROR;
    case BodySink::Action::Cancel:
    case BodySink::Action::Finished:
      break;
  }
  return answer_early(t, action == BodySink::Action::Finished) ? chunk.size()
                                                               : CURL_WRITEFUNC_ERROR;
}

// Answers a stream whose transfer is still on the wire: finished at its end marker, or
// cancelled. True: the rest is read out (HTTP/1.1, so the connection can be reused); false: the
// attempt is to be stopped (abort_error set).
bool Transport::Impl::answer_early(Transfer& t, bool finished) {
  // The caller is answered now; the transfer winds down on its own. Its marks are filled
  // before the answer: after it, the caller may be reading them.
  if (t.ex.marks) {
    fill_marks(*t.ex.marks, t.easy, t.attempt_start, t.attempts, t.got_response,
               wire_bytes(t.easy, t.ex.body.size(), config_.stream.request_chunk_size));
  }
  curl_easy_getinfo(t.easy, CURLINFO_RESPONSE_CODE, &t.status);
  release_slot(t);
  if (finished) {
    // The end marker arrived: the reply is whole, whether or not the upstream ends the body.
    t.finished_early = true;
    resolve_ok(t);
  } else {
    streams_cancelled_.fetch_add(1, std::memory_order_relaxed);
    resolve(t,
            make_error(ErrorCode::Cancelled, "the stream was cancelled by its on_event callback"));
  }
  long version = 0;
  curl_easy_getinfo(t.easy, CURLINFO_HTTP_VERSION, &version);
  if (version >= CURL_HTTP_VERSION_2_0 || config_.pool.disabled) {
    // HTTP/2 resets the stream alone (the connection stays); nothing to save by reading on.
    t.abort_error =
        make_error(ErrorCode::Cancelled, finished ? "stream finished" : "stream cancelled");
    return false;
  }
  t.drain_deadline = Clock::now() + kDrainTime;
  return true;
}

}  // namespace glmproxy::detail
