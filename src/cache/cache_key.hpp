#pragma once

// Cache and coalescing keys: XXH3-128 over a canonical, length-prefixed encoding of everything
// that changes an answer. Two requests get the same key only when they would be sent with the
// same meaning: same protocol, base URL, effective model, messages, system prompt, every
// generation parameter, extra_json (canonicalised: member order and whitespace do not matter)
// and tenant scope.

#include <string_view>

#include "cache/lru_cache.hpp"
#include "glmproxy/request.hpp"

namespace glmproxy::detail {

/// `model` is the effective model (after defaults); `stream` separates streamed answers (kept as
/// event sequences) from plain ones; `tenant_scope` is whose answer it is (the tenant key, or
/// empty for the client's own upstream key).
CacheKey chat_cache_key(const ChatRequest& request, std::string_view base_url,
                        std::string_view model, bool stream, std::string_view tenant_scope);

CacheKey embedding_cache_key(const EmbeddingRequest& request, std::string_view base_url,
                             std::string_view model, std::string_view tenant_scope);

/// XXH3-128 of `text` alone (e.g. a tenant key, as the key of its cached record).
CacheKey text_key(std::string_view text);

/// `json` with object members sorted by key (recursively, last duplicate wins), no whitespace and
/// numbers in one spelling; the input unchanged when it is not valid JSON. Empty stays empty.
std::string canonical_json(std::string_view json);

}  // namespace glmproxy::detail
