#pragma once

// Between the facade and the transport: sends chat exchanges and embedding jobs at once, or,
// with BATCHING_ENABLED, through the batching queue. A flushed batch sends identical requests
// once, and merges the embedding jobs of one model into one upstream call whose vectors are
// split back in order. Counts what batching saved.

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "batch/batch_queue.hpp"
#include "cache/lru_cache.hpp"
#include "glmproxy/config.hpp"
#include "glmproxy/response.hpp"
#include "transport/transport.hpp"

namespace glmproxy::detail {

struct ChatJob {
  std::optional<CacheKey> identity;  ///< set: identical jobs in one batch are sent once
  std::string group;                 ///< jobs with the same group may share a batch; "" = by URL
  HttpExchange exchange;
  TransferCallback on_done;  ///< on the I/O thread, exactly once
};

struct EmbeddingJob {
  std::optional<CacheKey> identity;
  HttpExchange exchange;  ///< url and headers; the body is written when the batch is sent
  std::string model;
  std::optional<int> dimensions;
  std::string extra_json;
  std::vector<std::string> inputs;
  std::function<void(Result<EmbeddingResponse>)> on_done;  ///< on the I/O thread, exactly once
  /// On the I/O thread, before on_done, with the tokens this job's inputs cost in the upstream
  /// call's answer. Once per input sent: not for a job merged with an identical one in its batch
  /// (it shares that one's answer, like a coalesced request, and costs nothing).
  std::function<void(const Usage&)> charge;
};

struct DispatchStats {
  BatchQueueStats queue;
  std::uint64_t batched_requests = 0;  ///< requests that went out in batches
  std::uint64_t upstream_calls = 0;    ///< upstream calls made for them
  std::uint64_t exchanges = 0;         ///< all exchanges handed to the transport
};

/// Thread safety: thread-safe.
class Dispatcher {
 public:
  Dispatcher(const Config& config, Transport& transport);
  ~Dispatcher();  ///< stop()
  /// Jobs still waiting in the batching queue resolve with ShuttingDown (through the
  /// transport), and so do jobs queued from now on. Idempotent.
  void stop();
  Dispatcher(const Dispatcher&) = delete;
  Dispatcher& operator=(const Dispatcher&) = delete;

  /// Sends `job` (through the batching queue when it is on). With `lead_until` and no
  /// batching, the calling thread may drive the transport's loop until `(*lead_until)()` is true
  /// (Transport::lead, which also takes `lend`): a blocking call.
  void chat(ChatJob job, const std::function<bool()>* lead_until = nullptr,
            const std::function<bool()>* lend = nullptr);
  void embed(EmbeddingJob job);
  DispatchStats stats() const;

 private:
  using Job = std::variant<ChatJob, EmbeddingJob>;
  /// Through the batching queue; QueueFull is answered on the I/O thread.
  template <class J>
  void enqueue(std::string group, J job);
  void flush(std::vector<Job> batch);
  void send_embeddings(std::vector<EmbeddingJob> jobs, bool batched);
  void reject(Job job, Error error);

  Transport& transport_;
  std::size_t max_response_bytes_;  // GLMPROXY_MAX_RESPONSE_BYTES, per merged request
  std::atomic<std::uint64_t> batched_{0}, calls_{0}, exchanges_{0};
  std::shared_ptr<std::atomic<std::size_t>> outstanding_ =
      std::make_shared<std::atomic<std::size_t>>(0);
  std::unique_ptr<BatchQueue<Job>> queue_;  // when batching is on; last, so it goes first
};

}  // namespace glmproxy::detail
