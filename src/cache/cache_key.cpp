#include "cache/cache_key.hpp"

#include <simdjson.h>

#include <fmt/format.h>

#include <algorithm>
#include <bit>
#include <cstdint>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "core/json.hpp"

#define XXH_INLINE_ALL
#include <xxhash.h>

namespace glmproxy::detail {

namespace {

// Every field is written with a tag and, for text, its length: no two different requests can
// produce the same byte stream (no "ab"+"c" == "a"+"bc" collisions).
class Hasher {
 public:
  Hasher() { XXH3_128bits_reset(&state_); }

  void tag(char t) { bytes(&t, 1); }
  void text(std::string_view s) {
    u64(s.size());
    bytes(s.data(), s.size());
  }
  void u64(std::uint64_t v) { bytes(&v, sizeof v); }
  void i64(std::int64_t v) { bytes(&v, sizeof v); }
  void f64(double v) {
    if (v == 0.0) v = 0.0;  // -0.0 and 0.0 mean the same temperature
    u64(std::bit_cast<std::uint64_t>(v));
  }
  template <class T, class F>
  void optional(const std::optional<T>& v, F&& write) {
    tag(v ? '1' : '0');
    if (v) write(*v);
  }

  CacheKey digest() const {
    const XXH128_hash_t h = XXH3_128bits_digest(&state_);
    return CacheKey{h.low64, h.high64};
  }

 private:
  void bytes(const void* p, std::size_t n) { XXH3_128bits_update(&state_, p, n); }
  XXH3_state_t state_;
};

void write_canonical(std::string& out, simdjson::dom::element e) {
  using simdjson::dom::element_type;
  switch (e.type()) {
    case element_type::OBJECT: {
      std::vector<std::pair<std::string_view, simdjson::dom::element>> members;
      for (auto field : simdjson::dom::object(e)) members.emplace_back(field.key, field.value);
      // Stable, so that of duplicate keys the last one (what a JSON reader keeps) ends up last.
      std::stable_sort(members.begin(), members.end(),
                       [](const auto& a, const auto& b) { return a.first < b.first; });
      out += '{';
      bool first = true;
      for (std::size_t i = 0; i < members.size(); ++i) {
        if (i + 1 < members.size() && members[i + 1].first == members[i].first) continue;
        if (!first) out += ',';
        first = false;
        append_json_string(out, members[i].first);
        out += ':';
        write_canonical(out, members[i].second);
      }
      out += '}';
      return;
    }
    case element_type::ARRAY: {
      out += '[';
      bool first = true;
      for (auto item : simdjson::dom::array(e)) {
        if (!first) out += ',';
        first = false;
        write_canonical(out, item);
      }
      out += ']';
      return;
    }
    case element_type::STRING:
      if (!append_json_string(out, std::string_view(e))) out += simdjson::minify(e);
      return;
    case element_type::INT64:
      out += fmt::format("{}", std::int64_t(e));
      return;
    case element_type::UINT64:
      out += fmt::format("{}", std::uint64_t(e));
      return;
    case element_type::DOUBLE: {
      const double d = double(e);
      // 1.0 and 1 are the same number to the upstream.
      if (d == static_cast<double>(static_cast<std::int64_t>(d)) && d > -9e15 && d < 9e15) {
        out += fmt::format("{}", static_cast<std::int64_t>(d));
      } else {
        out += fmt::format("{}", d);
      }
      return;
    }
    case element_type::BOOL:
      out += bool(e) ? "true" : "false";
      return;
    case element_type::NULL_VALUE:
      out += "null";
      return;
  }
}

void hash_json(Hasher& h, std::string_view json) {
  if (json.empty()) {
    h.tag('-');
    return;
  }
  h.tag('J');
  h.text(canonical_json(json));
}

}  // namespace

std::string canonical_json(std::string_view json) {
  if (json.empty()) return {};
  thread_local simdjson::dom::parser parser;  // keeps its buffers between calls
  simdjson::dom::element root;
  if (parser.parse(json.data(), json.size(), true).get(root)) return std::string(json);
  std::string out;
  out.reserve(json.size());
  write_canonical(out, root);
  return out;
}

CacheKey chat_cache_key(const ChatRequest& r, std::string_view base_url, std::string_view model,
                        bool stream, std::string_view tenant_scope) {
  Hasher h;
  h.text("glmproxy.chat.v1");
  h.tag(r.protocol == Protocol::Anthropic ? 'A' : 'O');
  h.text(base_url);
  h.text(model);
  h.tag(stream ? 'S' : 'C');
  h.u64(r.messages.size());
  for (const Message& m : r.messages) {
    h.text(m.role);
    h.text(m.content);
    h.text(m.tool_call_id);
    hash_json(h, m.tool_calls_json);
    h.u64(m.parts.size());
    for (const ContentPart& p : m.parts) {
      h.u64(static_cast<std::uint64_t>(p.type));
      h.text(p.text);
      h.text(p.url);
      h.text(p.data);
      h.text(p.media_type);
      h.text(p.detail);
    }
    h.u64(m.tool_calls.size());
    for (const ToolCall& c : m.tool_calls) {
      h.text(c.id);
      h.text(c.name);
      hash_json(h, c.arguments_json);
    }
    h.text(m.reasoning_content);
    h.u64(m.thinking_blocks.size());
    for (const ThinkingBlock& b : m.thinking_blocks) {
      h.u64(static_cast<std::uint64_t>(b.type));
      h.text(b.thinking);
      h.text(b.signature);
      h.text(b.data);
    }
  }
  h.optional(r.system, [&](const std::string& s) { h.text(s); });
  h.optional(r.temperature, [&](double v) { h.f64(v); });
  h.optional(r.top_p, [&](double v) { h.f64(v); });
  h.optional(r.max_tokens, [&](int v) { h.i64(v); });
  h.u64(r.stop.size());
  for (const std::string& s : r.stop) h.text(s);
  h.optional(r.seed, [&](std::int64_t v) { h.i64(v); });
  h.optional(r.thinking, [&](bool v) { h.tag(v ? 'T' : 'F'); });
  h.optional(r.thinking_budget_tokens, [&](int v) { h.i64(v); });
  h.u64(r.tools.size());
  for (const Tool& t : r.tools) {
    h.text(t.name);
    h.text(t.description);
    hash_json(h, t.parameters_json);
    h.optional(t.strict, [&](bool v) { h.tag(v ? 'T' : 'F'); });
  }
  h.optional(r.tool_choice, [&](const ToolChoice& c) {
    h.u64(static_cast<std::uint64_t>(c.type));
    h.text(c.name);
  });
  h.optional(r.response_format, [&](const ResponseFormat& f) {
    h.u64(static_cast<std::uint64_t>(f.type));
    h.text(f.name);
    h.text(f.description);
    hash_json(h, f.schema_json);
    h.optional(f.strict, [&](bool v) { h.tag(v ? 'T' : 'F'); });
  });
  // do_sample and tool_stream change the answer or its stream; user_id and body_request_id
  // only name the caller and the call (like the X-Request-ID header), so identical requests of
  // two end users share an answer (docs/caching.md).
  h.optional(r.do_sample, [&](bool v) { h.tag(v ? 'T' : 'F'); });
  h.optional(r.tool_stream, [&](bool v) { h.tag(v ? 'T' : 'F'); });
  hash_json(h, r.extra_json);
  h.text(tenant_scope);
  return h.digest();
}

CacheKey text_key(std::string_view text) {
  Hasher h;
  h.text("glmproxy.text.v1");
  h.text(text);
  return h.digest();
}

CacheKey embedding_cache_key(const EmbeddingRequest& r, std::string_view base_url,
                             std::string_view model, std::string_view tenant_scope) {
  Hasher h;
  h.text("glmproxy.embed.v1");
  h.text(base_url);
  h.text(model);
  h.u64(r.input.size());
  for (const std::string& s : r.input) h.text(s);
  h.optional(r.dimensions, [&](int v) { h.i64(v); });
  hash_json(h, r.extra_json);
  h.text(tenant_scope);
  return h.digest();
}

}  // namespace glmproxy::detail
