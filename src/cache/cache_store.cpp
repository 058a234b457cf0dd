#include "cache/cache_store.hpp"

namespace glmproxy::detail {

namespace {

std::size_t chat_bytes(const ChatResponse& r) noexcept {
  std::size_t n = sizeof(ChatResponse) + r.id.size() + r.model.size() + r.content.size() +
                  r.finish_reason.size() + r.reasoning_content.size() + r.raw_json.size() +
                  r.refusal.size() + r.request_id.size() + r.web_search_json.size();
  for (const ToolCall& t : r.tool_calls) {
    n += sizeof(ToolCall) + t.id.size() + t.name.size() + t.arguments_json.size();
  }
  for (const ThinkingBlock& b : r.thinking_blocks) {
    n += sizeof(ThinkingBlock) + b.thinking.size() + b.signature.size() + b.data.size();
  }
  return n;
}

}  // namespace

std::size_t answer_bytes(const CachedAnswer& a) noexcept {
  std::size_t bytes = sizeof(CachedAnswer) + chat_bytes(a.chat);
  for (const StreamEvent& e : a.events) {
    bytes += sizeof(StreamEvent) + e.text.size() + e.tool_call_id.size() + e.tool_name.size();
  }
  for (const auto& v : a.embedding.embeddings) bytes += v.size() * sizeof(float) + 24;
  return bytes;
}

void MemoryCacheStore::put(const CacheKey& key, CachedAnswerPtr answer) {
  const std::size_t bytes = answer_bytes(*answer);
  lru_.put(key, std::move(answer), bytes);
}

std::unique_ptr<CacheStore> make_cache_store(const Config& config) {
  if (!config.cache.enabled) return nullptr;
  LruCacheOptions options;
  options.max_entries = config.cache.max_entries;
  options.max_bytes = config.cache.max_bytes;
  options.ttl = config.cache.ttl;
  options.clock = config.clock;
  return std::make_unique<MemoryCacheStore>(options);
}

}  // namespace glmproxy::detail
