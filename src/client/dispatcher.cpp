#include "client/dispatcher.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <map>
#include <string_view>
#include <utility>

#include "core/fan_out.hpp"
#include "core/no_throw.hpp"
#include "core/saturating.hpp"
#include "protocol/protocol.hpp"

namespace glmproxy::detail {

namespace {

std::string embedding_group(const EmbeddingJob& job) {
  // Jobs merge only when everything but their inputs is the same, credentials included.
  std::string group = fmt::format("e|{}|{}|{}|{}", job.exchange.url, job.model,
                                  job.dimensions.value_or(0), job.extra_json);
  for (const std::string& h : job.exchange.headers) {
    group += '|';
    group += h;
  }
  return group;
}

}  // namespace

Dispatcher::Dispatcher(const Config& config, Transport& transport)
    : transport_(transport), max_response_bytes_(config.stream.max_response_bytes) {
  if (config.batch.enabled) {
    queue_ = std::make_unique<BatchQueue<Job>>(
        config.batch, outstanding_, [this](std::vector<Job> batch) { flush(std::move(batch)); },
        [this](std::vector<Job> rest) {
          for (Job& job : rest) {
            reject(std::move(job),
                   make_error(ErrorCode::ShuttingDown, "the client is shutting down"));
          }
        });
  }
}

Dispatcher::~Dispatcher() { stop(); }

void Dispatcher::stop() {
  if (queue_) queue_->stop();
}

DispatchStats Dispatcher::stats() const {
  DispatchStats s;
  if (queue_) s.queue = queue_->stats();
  s.batched_requests = batched_.load(std::memory_order_relaxed);
  s.upstream_calls = calls_.load(std::memory_order_relaxed);
  s.exchanges = exchanges_.load(std::memory_order_relaxed);
  return s;
}

void Dispatcher::reject(Job job, Error error) {
  if (auto* chat = std::get_if<ChatJob>(&job)) {
    transport_.fail(std::move(error), std::move(chat->on_done));
  } else {
    auto& embedding = std::get<EmbeddingJob>(job);
    transport_.post(
        [cb = std::move(embedding.on_done), e = std::move(error)]() mutable { cb(std::move(e)); });
  }
}

void Dispatcher::chat(ChatJob job, const std::function<bool()>* lead_until,
                      const std::function<bool()>* lend) {
  if (!queue_) {
    exchanges_.fetch_add(1, std::memory_order_relaxed);
    if (lead_until != nullptr) {
      transport_.lead(std::move(job.exchange), std::move(job.on_done), *lead_until, lend);
    } else {
      transport_.submit(std::move(job.exchange), std::move(job.on_done));
    }
    return;
  }
  std::string group = job.group.empty() ? "c|" + job.exchange.url : job.group;
  enqueue(std::move(group), std::move(job));
}

template <class J>
void Dispatcher::enqueue(std::string group, J job) {
  // Counted from here until answered (the queue counted it when it took it).
  job.on_done = [outstanding = outstanding_, cb = std::move(job.on_done)](auto r) mutable {
    outstanding->fetch_sub(1);
    cb(std::move(r));
  };
  Job item(std::move(job));
  // push() takes the job only when it queues it; on QueueFull it is still ours to answer.
  if (auto queued = queue_->push(std::move(group), std::move(item)); !queued) {
    outstanding_->fetch_add(1);  // the wrapper will take one off again
    reject(std::move(item), std::move(queued).error());
  }
}

void Dispatcher::embed(EmbeddingJob job) {
  if (!queue_) {
    std::vector<EmbeddingJob> one;
    one.push_back(std::move(job));
    send_embeddings(std::move(one), /*batched=*/false);
    return;
  }
  std::string group = embedding_group(job);
  enqueue(std::move(group), std::move(job));
}

void Dispatcher::flush(std::vector<Job> batch) {
  batched_.fetch_add(batch.size(), std::memory_order_relaxed);
  std::vector<EmbeddingJob> embeddings;
  // Identical chat requests in one batch are sent once; each gets the answer.
  std::vector<std::pair<HttpExchange, std::vector<TransferCallback>>> unique;
  std::map<std::pair<std::uint64_t, std::uint64_t>, std::size_t> seen;
  for (Job& job : batch) {
    if (auto* e = std::get_if<EmbeddingJob>(&job)) {
      embeddings.push_back(std::move(*e));
      continue;
    }
    ChatJob& chat = std::get<ChatJob>(job);
    if (chat.identity) {
      auto [it, first] = seen.try_emplace({chat.identity->lo, chat.identity->hi}, unique.size());
      if (!first) {
        unique[it->second].second.push_back(std::move(chat.on_done));
        continue;
      }
    }
    unique.emplace_back(std::move(chat.exchange), std::vector<TransferCallback>{});
    unique.back().second.push_back(std::move(chat.on_done));
  }
  if (!embeddings.empty()) send_embeddings(std::move(embeddings), /*batched=*/true);
  if (unique.empty()) return;
  std::vector<std::pair<HttpExchange, TransferCallback>> exchanges;
  exchanges.reserve(unique.size());
  for (auto& [exchange, callbacks] : unique) {
    if (callbacks.size() == 1) {
      exchanges.emplace_back(std::move(exchange), std::move(callbacks.front()));
    } else {
      exchanges.emplace_back(std::move(exchange),
                             [cbs = std::move(callbacks)](Result<HttpResult> r) mutable {
                               fan_out(cbs, std::move(r));
                             });
    }
  }
  calls_.fetch_add(exchanges.size(), std::memory_order_relaxed);
  exchanges_.fetch_add(exchanges.size(), std::memory_order_relaxed);
  transport_.submit_batch(std::move(exchanges));
}

void Dispatcher::send_embeddings(std::vector<EmbeddingJob> jobs, bool batched) {
  using Callback = std::function<void(Result<EmbeddingResponse>)>;
  struct Part {
    std::size_t first_input = 0, inputs = 0, bytes = 0;
    std::vector<Callback> callbacks;
    std::function<void(const Usage&)> charge;  // the first job's: its inputs were sent once
  };
  std::vector<Part> parts;
  std::vector<std::string_view> inputs;
  std::map<std::pair<std::uint64_t, std::uint64_t>, std::size_t> seen;
  std::size_t requests = 0;
  for (EmbeddingJob& job : jobs) {
    ++requests;
    if (job.identity) {
      auto [it, first] = seen.try_emplace({job.identity->lo, job.identity->hi}, parts.size());
      if (!first) {
        parts[it->second].callbacks.push_back(std::move(job.on_done));
        continue;
      }
    }
    Part part;
    part.first_input = inputs.size();
    part.inputs = job.inputs.size();
    for (const std::string& s : job.inputs) {
      inputs.emplace_back(s);
      part.bytes += s.size();
    }
    part.callbacks.push_back(std::move(job.on_done));
    part.charge = std::move(job.charge);
    parts.push_back(std::move(part));
  }
  const EmbeddingJob& lead = jobs.front();
  auto body = write_embedding_request(inputs, lead.model, lead.dimensions, lead.extra_json);
  if (!body) {
    // Each job was checked alone before it was queued, so this is not expected; answer anyway.
    for (Part& part : parts) {
      for (Callback& cb : part.callbacks) {
        transport_.post([cb = std::move(cb), e = body.error()]() mutable { cb(std::move(e)); });
      }
    }
    return;
  }
  HttpExchange exchange = lead.exchange;
  exchange.body = std::move(*body);
  // A merged call answers every request in it: its body may be as large as theirs together.
  exchange.max_response_bytes = max_response_bytes_ * std::max<std::size_t>(1, requests);
  const std::size_t total_inputs = inputs.size();
  if (batched) calls_.fetch_add(1, std::memory_order_relaxed);
  exchanges_.fetch_add(1, std::memory_order_relaxed);
  transport_.submit(std::move(exchange), [parts = std::move(parts), total_inputs,
                                          requests](Result<HttpResult> r) mutable {
    auto fail_all = [&](const Error& e) {
      for (Part& part : parts) fan_out(part.callbacks, Result<EmbeddingResponse>(e));
    };
    try {
      [&] {
        if (!r) return fail_all(r.error());
        HttpResult& http = *r;
        if (http.status < 200 || http.status >= 300) {
          return fail_all(map_error_response(
              Protocol::OpenAI, http.status, http.body, find_header(http.headers, "retry-after"),
              find_header(http.headers, "retry-after-ms"), std::chrono::system_clock::now()));
        }
        auto parsed = parse_embedding_response(http.body, total_inputs);
        if (!parsed) {
          Error e = std::move(parsed).error();
          if (e.http_status == 0) e.http_status = http.status;
          return fail_all(e);
        }
        // The merged call's tokens, shared out by input bytes (the last part takes the rest).
        std::size_t all_bytes = 0;
        for (const Part& part : parts) all_bytes += part.bytes;
        std::int64_t left = parsed->usage.prompt_tokens;
        for (std::size_t i = 0; i < parts.size(); ++i) {
          Part& part = parts[i];
          EmbeddingResponse out;
          out.model = parsed->model;
          out.attempts = http.attempts;
          out.merged_requests = static_cast<int>(requests);
          const auto first = static_cast<std::ptrdiff_t>(part.first_input);
          out.embeddings.assign(std::make_move_iterator(parsed->embeddings.begin() + first),
                                std::make_move_iterator(parsed->embeddings.begin() + first +
                                                        static_cast<std::ptrdiff_t>(part.inputs)));
          std::int64_t share = non_negative(left);
          if (i + 1 < parts.size()) {
            share = all_bytes == 0
                        ? parsed->usage.prompt_tokens / static_cast<std::int64_t>(parts.size())
                        : static_cast<std::int64_t>(std::min(
                              // Below 2^63: a cast of a double that does not fit is undefined.
                              9.2e18, static_cast<double>(parsed->usage.prompt_tokens) *
                                          static_cast<double>(part.bytes) /
                                          static_cast<double>(all_bytes)));
          }
          share =
              std::min(share, non_negative(left));  // rounding never gives out more than there is
          left -= share;
          out.usage.prompt_tokens = share;
          out.usage.total_tokens = share;
          if (part.charge) {
            try {
              part.charge(out.usage);  // once: the part's duplicates share the answer for free
            } catch (...) {
              // Usage is best effort; the answer still goes to every caller.
            }
          }
          fan_out(part.callbacks, Result<EmbeddingResponse>(std::move(out)));
        }
      }();
    } catch (...) {
      // Out of memory parsing or sharing out: every caller is still answered (a callback that
      // already was ignores the second answer).
      fail_all(exception_error({"glmproxy: reading the embeddings answer"}));
    }
  });
}

}  // namespace glmproxy::detail
