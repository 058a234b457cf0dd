// complete() and complete_async(): a chat call through the pipeline, coalesced and batched.

#include "client/client.hpp"

#include <fmt/format.h>

#include <functional>
#include <memory>
#include <string>
#include <utility>

#include "cache/cache_key.hpp"
#include "client/blocking_wait.hpp"
#include "client/http_checks.hpp"
#include "core/no_throw.hpp"
#include "protocol/protocol.hpp"

namespace glmproxy::detail {

void Client::complete_async(const ChatRequest& request,
                            std::function<void(Result<ChatResponse>)> user_done) {
  // Every answer (from the I/O thread, or from here for a refusal or a cache hit) goes to the
  // callback executor; the metrics are taken before, where the answer is.
  std::function<void(Result<ChatResponse>)> on_done =
      [this, cb = std::move(user_done)](Result<ChatResponse> r) mutable {
        post_callback(std::move(cb), std::move(r));
      };
  if (!pipeline_->timed()) {
    return complete_async_impl(request, std::move(on_done), nullptr);
  }
  const Api api = CallPipeline::api_of(request.protocol);
  auto trace = pipeline_->begin_trace(request.request_id, api, false);
  Trace* raw = trace.get();
  complete_async_impl(
      request,
      [this, api, start = Clock::now(), trace = std::move(trace),
       cb = std::move(on_done)](Result<ChatResponse> r) {
        try {
          pipeline_->finish_call(api, start, trace.get(), r);
        } catch (...) {
          // Metrics and profiles are best effort; the answer is not.
        }
        cb(std::move(r));
      },
      raw);
}

Result<ChatResponse> Client::complete(const ChatRequest& request) {
  if (!pipeline_->timed()) return complete_impl(request, nullptr);
  const auto start = Clock::now();
  const Api api = CallPipeline::api_of(request.protocol);
  auto trace = pipeline_->begin_trace(request.request_id, api, false);
  Result<ChatResponse> r = complete_impl(request, trace.get());
  pipeline_->finish_call(api, start, trace.get(), r);
  return r;
}

void Client::complete_async_impl(const ChatRequest& request,
                                 std::function<void(Result<ChatResponse>)> on_done, Trace* trace) {
  // A refusal or a cache hit is answered from here: on_done hands it to the callback
  // executor, so the callback still does not run on this stack (and no I/O thread trip).
  auto admitted = prepare_chat(request, /*stream=*/false, trace);
  if (!admitted) return on_done(std::move(admitted).error());
  PreparedChat& prepared = *admitted;
  if (auto hit = cached_chat(prepared)) return on_done(std::move(*hit));
  if (auto written = write_body(prepared); !written) return on_done(std::move(written).error());
  send_chat(std::move(prepared), std::move(on_done));
}

Result<ChatResponse> Client::complete_impl(const ChatRequest& request, Trace* trace) {
  if (transport_->on_io_thread()) return called_from_callback("complete()");
  auto admitted = prepare_chat(request, /*stream=*/false, trace);
  if (!admitted) return std::move(admitted).error();
  PreparedChat& prepared = *admitted;
  if (auto hit = cached_chat(prepared)) return std::move(*hit);  // no thread hand-off
  if (auto written = write_body(prepared); !written) return std::move(written).error();
  return send_chat_blocking(std::move(prepared));
}

// Tenant key and quota first (with a key registry), then the cache key: a cache hit needs
// neither the request body nor a thread hand-off. (An invalid request cannot hit: only
// answers to valid ones are stored.)
Result<Client::PreparedChat> Client::prepare_chat(const ChatRequest& request, bool stream,
                                                  Trace* trace) {
  auto model =
      pipeline_->admit(request.request_id, request.api_key,
                       request.model.empty() ? config_.upstream.default_model : request.model,
                       /*key_model=*/true, trace);
  if (!model) return std::move(model).error();
  const CallPolicy policy = pipeline_->policy(request.cache);
  PreparedChat p{&request,
                 std::move(*model),
                 stream,
                 {},
                 policy.read_cache,
                 policy.write_cache,
                 policy.coalesce && !stream,  // streams are not coalesced
                 {},
                 trace};
  if (p.read_cache || p.write_cache || p.coalesce) {
    p.key = chat_cache_key(request, base_url(request.protocol), p.model, stream,
                           pipeline_->tenant_scope(request.api_key));
  }
  return p;
}

Result<void> Client::write_body(PreparedChat& p) {
  auto body = write_chat_request(*p.request, p.model, p.stream);
  if (!body) return std::move(body).error();
  p.body = std::move(*body);
  return {};
}

std::optional<ChatResponse> Client::cached_chat(const PreparedChat& p) {
  if (!p.read_cache) return std::nullopt;
  auto hit = pipeline_->lookup(p.key, p.trace);
  if (!hit) return std::nullopt;
  ChatResponse out = (*hit)->chat;
  out.from_cache = true;
  return out;
}

// After the cache missed: join an identical request in flight, or send (through the batching
// queue when it is on). `on_done` runs on the loop's driver, exactly once.
void Client::send_chat(PreparedChat p, std::function<void(Result<ChatResponse>)> on_done) {
  const ChatRequest& request = *p.request;
  if (p.coalesce) {
    // Marked before joining: a joined request may be answered (on the I/O thread) before
    // lead_or_join returns here.
    if (p.trace != nullptr) p.trace->coalesced = true;
    if (!chat_flights_.lead_or_join(p.key, on_done)) return;
    if (p.trace != nullptr) p.trace->coalesced = false;
  }
  ChatJob job = chat_job(p);
  job.on_done = [this, protocol = request.protocol, key = p.key, write = p.write_cache,
                 coalesce = p.coalesce, tenant = request.api_key,
                 cb = std::move(on_done)](Result<HttpResult> r) mutable {
    auto read = [this, protocol, key, write, coalesce, tenant](Result<HttpResult>& answer,
                                                               ChatCallback& done) {
      Result<ChatResponse> reply =
          read_chat_answer(protocol, std::move(answer), key, write, tenant);
      if (coalesce) {
        chat_flights_.finish(key, std::move(reply));  // the leader's own cb is among them
      } else if (callbacks_->on_own_thread()) {
        answer_on_executor(done, std::move(reply));
      } else {
        done(std::move(reply));
      }
    };
    if (!callbacks_->owns_threads()) return read(r, cb);
    // The client's own callback threads parse the answer and run the callback there: the
    // driver only moves bytes. (An application's executor may run a task after the client is
    // gone, so with one the answer is read here and only the callback goes to it.)
    callbacks_->post([read, r = std::move(r), cb = std::move(cb)]() mutable { read(r, cb); });
  };
  dispatcher_->chat(std::move(job));
}

// complete()'s send: as send_chat(), but the answer is read on this thread, which, when nothing
// else is on the wire, also drives the transfer itself (Transport::lead): no hand-off at all,
// and under load the driver only moves bytes while each caller parses its own answer.
Result<ChatResponse> Client::send_chat_blocking(PreparedChat p) {
  const ChatRequest& request = *p.request;
  BlockingWait<Result<ChatResponse>> joined;
  if (p.coalesce) {
    if (p.trace != nullptr) p.trace->coalesced = true;
    if (!chat_flights_.lead_or_join(p.key, joined.callback())) return joined.get();
    if (p.trace != nullptr) p.trace->coalesced = false;
  }
  ChatJob job = chat_job(p);
  BlockingWait<Result<HttpResult>> wait;
  job.on_done = wait.callback();
  const std::function<bool()> answered = [&wait] { return wait.ready(); };
  dispatcher_->chat(std::move(job), &answered);
  Result<ChatResponse> reply =
      read_chat_answer(request.protocol, wait.get(), p.key, p.write_cache, request.api_key);
  if (!p.coalesce) return reply;
  chat_flights_.finish(p.key, std::move(reply));  // this call's own wait is among them
  return joined.get();
}

ChatJob Client::chat_job(PreparedChat& p) {
  ChatJob job;
  job.exchange = chat_exchange(*p.request, std::move(p.body), p.model, false, p.trace);
  if (p.coalesce) job.identity = p.key;
  return job;
}

// An upstream answer as the caller's reply: parsed, charged to the tenant (once per upstream
// call) and stored in the cache when the call may write it.
Result<ChatResponse> Client::read_chat_answer(Protocol protocol, Result<HttpResult> r,
                                              const CacheKey& key, bool write,
                                              const std::string& tenant) {
  Result<ChatResponse> reply = make_error(ErrorCode::Internal, "out of memory");
  try {
    reply = to_chat_response(protocol, std::move(r));
    if (reply) pipeline_->charge(tenant, reply->usage);
    if (reply && write) {
      CachedAnswer value;
      value.chat = *reply;
      pipeline_->store(key, std::move(value));
    }
  } catch (...) {
    // Whatever failed (out of memory parsing a large body), the callers are answered.
    reply = exception_error({"glmproxy: reading the chat answer"});
  }
  return reply;
}

HttpExchange Client::chat_exchange(const ChatRequest& request, std::string body,
                                   const std::string& model, bool stream, Trace* trace) {
  HttpExchange ex = upstream_.chat_exchange(request, std::move(body), model, stream);
  if (trace != nullptr) ex.marks = trace->transfer = std::make_shared<TransferMarks>();
  return ex;
}

}  // namespace glmproxy::detail
