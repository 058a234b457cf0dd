// embed(): embeddings through the pipeline, merged into batches by the dispatcher.

#include "client/client.hpp"

#include <fmt/format.h>

#include <functional>
#include <memory>
#include <string>
#include <utility>

#include "cache/cache_key.hpp"
#include "client/blocking_wait.hpp"
#include "client/http_checks.hpp"
#include "protocol/protocol.hpp"

namespace glmproxy::detail {

Result<EmbeddingResponse> Client::embed(const EmbeddingRequest& request) {
  if (!pipeline_->timed()) return embed_impl(request, nullptr);
  const auto start = Clock::now();
  auto trace = pipeline_->begin_trace(request.request_id, Api::Embeddings, false);
  Result<EmbeddingResponse> r = embed_impl(request, trace.get());
  pipeline_->finish_call(Api::Embeddings, start, trace.get(), r);
  return r;
}

Result<EmbeddingResponse> Client::embed_impl(const EmbeddingRequest& request, Trace* trace) {
  if (transport_->on_io_thread()) return called_from_callback("embed()");
  if (auto ok = check_request_id(request.request_id); !ok) return std::move(ok).error();
  const std::string& model =
      request.model.empty() ? config_.upstream.embedding_model : request.model;
  std::vector<std::string_view> inputs(request.input.begin(), request.input.end());
  // Written once now to refuse a bad request before it waits in a batch.
  auto body = write_embedding_request(inputs, model, request.dimensions, request.extra_json);
  if (!body) return std::move(body).error();
  // The key's model override is a chat model: embeddings keep their own.
  if (auto admitted = pipeline_->admit(request.request_id, request.api_key, model,
                                       /*key_model=*/false, trace);
      !admitted) {
    return std::move(admitted).error();
  }
  const std::string& base = config_.upstream.openai_base_url;
  const CallPolicy policy = pipeline_->policy(request.cache);
  CacheKey key;
  if (policy.read_cache || policy.write_cache || policy.coalesce) {
    key = embedding_cache_key(request, base, model, pipeline_->tenant_scope(request.api_key));
  }
  if (policy.read_cache) {
    if (auto hit = pipeline_->lookup(key, trace)) {
      EmbeddingResponse out = (*hit)->embedding;
      out.from_cache = true;
      return out;
    }
  }
  BlockingWait<Result<EmbeddingResponse>> wait;
  std::function<void(Result<EmbeddingResponse>)> deliver = wait.callback();
  if (policy.coalesce && !embed_flights_.lead_or_join(key, std::move(deliver))) {
    if (trace != nullptr) trace->coalesced = true;
    return wait.get();  // an identical request is in flight: its answer is ours
  }
  EmbeddingJob job;
  if (policy.coalesce || policy.read_cache) job.identity = key;
  job.exchange.method = "POST";
  job.exchange.protocol = Protocol::OpenAI;
  job.exchange.url = join_url(base, "embeddings");
  job.exchange.model = model;
  upstream_.add_headers(job.exchange, Protocol::OpenAI, {});
  job.exchange.headers.emplace_back("Content-Type: application/json");
  job.exchange.keep_all_headers = false;
  if (trace != nullptr) job.exchange.marks = trace->transfer = std::make_shared<TransferMarks>();
  job.model = model;
  job.dimensions = request.dimensions;
  job.extra_json = canonical_json(request.extra_json);
  job.inputs = request.input;
  // Charged by the dispatcher, once per input sent: a request merged with an identical one in
  // its batch shares that one's answer and costs nothing, like a coalesced request.
  job.charge = [this, tenant = request.api_key](const Usage& usage) {
    pipeline_->charge(tenant, usage);
  };
  job.on_done = [this, key, policy, deliver](Result<EmbeddingResponse> r) mutable {
    try {
      if (r && policy.write_cache) {
        CachedAnswer value;
        value.embedding = *r;
        pipeline_->store(key, std::move(value));
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
  return wait.get();
}

}  // namespace glmproxy::detail
