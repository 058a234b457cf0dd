// stream(): a chat call whose events reach on_event on the calling thread.

#include "client/client.hpp"

#include <fmt/format.h>

#include <functional>
#include <memory>
#include <string>
#include <utility>

#include "cache/cache_key.hpp"
#include "client/event_channel.hpp"
#include "protocol/chat_stream.hpp"
#include "protocol/protocol.hpp"

namespace glmproxy::detail {

Result<ChatResponse> Client::stream(const ChatRequest& request,
                                    const std::function<bool(const StreamEvent&)>& on_event) {
  if (!pipeline_->timed()) return stream_impl(request, on_event, nullptr);
  const auto start = Clock::now();
  const Api api = CallPipeline::api_of(request.protocol);
  auto trace = pipeline_->begin_trace(request.request_id, api, true);
  bool first = true;
  const std::function<bool(const StreamEvent&)> timed = [&](const StreamEvent& e) {
    if (first && (e.type == StreamEvent::Type::Text || e.type == StreamEvent::Type::Reasoning)) {
      first = false;
      const auto now = Clock::now();
      if (pipeline_->metrics().enabled()) {
        pipeline_->metrics().time_to_first_token(
            std::chrono::duration_cast<std::chrono::microseconds>(now - start));
      }
      if (trace) trace->first_token = now;
    }
    return on_event ? on_event(e) : true;
  };
  Result<ChatResponse> r = stream_impl(request, timed, trace.get());
  pipeline_->finish_call(api, start, trace.get(), r);
  return r;
}

Result<ChatResponse> Client::stream_impl(const ChatRequest& request,
                                         const std::function<bool(const StreamEvent&)>& on_event,
                                         Trace* trace) {
  if (transport_->on_io_thread()) return called_from_callback("stream()");
  auto admitted = prepare_chat(request, /*stream=*/true, trace);
  if (!admitted) return std::move(admitted).error();
  PreparedChat& prepared = *admitted;
  static const StreamCallback kIgnore = [](const StreamEvent&) { return true; };
  const StreamCallback& callback = on_event ? on_event : kIgnore;
  if (prepared.read_cache) {
    if (auto hit = pipeline_->lookup(prepared.key, trace)) {
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
  SseLimits limits;
  limits.max_line_bytes = config_.stream.max_line_bytes;
  limits.max_event_bytes = config_.stream.max_event_bytes;
  if (auto written = write_body(prepared); !written) return std::move(written).error();
  // The body is parsed on the I/O thread; its events come here, where `callback` runs (a slow
  // consumer holds up only its own stream). `feed` outlives the exchange: this call waits for
  // the exchange to be resolved, whatever happens.
  auto channel = std::make_shared<EventChannel>();
  const StreamCallback feed = [ch = channel.get()](const StreamEvent& e) { return ch->push(e); };
  auto sink = std::make_shared<ChatStream>(request.protocol, &feed, limits,
                                           config_.stream.max_response_bytes);
  sink->record_events(prepared.write_cache);
  sink->watch_cancel(channel->cancel_flag());
  sink->after_chunk([ch = channel.get()] { ch->flush(); });

  HttpExchange ex = chat_exchange(request, std::move(prepared.body), prepared.model, true, trace);
  ex.sink = sink;
  ChatJob job;
  job.group = "c|" + ex.url;  // streams are never merged or deduplicated
  job.exchange = std::move(ex);
  job.on_done = [channel](Result<HttpResult> r) { channel->close(std::move(r)); };
  // When nothing else is on the wire, this thread drives the transfer until events (or the
  // answer) are in, runs on_event with the loop lent, and drives again: no hand-off while the
  // stream is alone. Anything submitted meanwhile wakes the I/O thread, which then drives it all.
  const std::function<bool()> events = [ch = channel.get()] { return ch->ready(); };
  const std::function<bool()> unanswered = [ch = channel.get()] { return !ch->closed(); };
  dispatcher_->chat(std::move(job), &events, &unanswered);
  EventChannel::Stop stop = EventChannel::Stop::None;
  Result<HttpResult> r = channel->consume(
      callback, [this] { transport_->poke(); }, &stop,
      [&] { transport_->lead_again(events, &unanswered); });
  if (stop == EventChannel::Stop::Threw) {
    return make_error(ErrorCode::Internal, "the stream's on_event callback threw");
  }
  if (stop == EventChannel::Stop::Cancelled) {
    return make_error(ErrorCode::Cancelled, "the stream was cancelled by its on_event callback");
  }
  if (!r) return std::move(r).error();
  if (r->status < 200 || r->status >= 300) return to_chat_response(request.protocol, std::move(r));
  ChatResponse out = sink->take_response();
  out.http_status = r->status;
  out.attempts = r->attempts;
  pipeline_->charge(request.api_key, out.usage);
  if (prepared.write_cache) {
    CachedAnswer value;
    value.chat = out;
    value.events = sink->take_events();
    pipeline_->store(prepared.key, std::move(value));
  }
  return out;
}

}  // namespace glmproxy::detail
