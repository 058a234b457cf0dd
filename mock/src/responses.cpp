#include "responses.hpp"

#include "thinking.hpp"
#include "tools.hpp"

#include <simdjson.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <optional>

namespace glmproxy::mock::detail {

namespace {

using simdjson::ondemand::json_type;

// The reply-shape markers a prompt text may carry.
void note_markers(std::string_view text, RequestInfo& info) {
  if (text.find("[mock:") == std::string_view::npos) return;
  info.usage_details = info.usage_details || text.find("[mock:usage_details]") != text.npos;
  info.refusal = info.refusal || text.find("[mock:refusal]") != text.npos;
  info.web_search = info.web_search || text.find("[mock:web_search]") != text.npos;
  info.redacted_thinking =
      info.redacted_thinking || text.find("[mock:redacted_thinking]") != text.npos;
}

// A message's content is a string or an array of blocks with "text"; `scan` (null for the
// system text) gathers what the message says beyond its text (tools.hpp).
std::int64_t count_text(simdjson::ondemand::value value, RequestInfo& info, MessageScan* scan) {
  json_type type;
  if (value.type().get(type)) return 0;
  if (type == json_type::string) {
    std::string_view s;
    if (value.get_string().get(s)) return 0;
    note_markers(s, info);
    if (scan != nullptr) scan->text = s;
    return static_cast<std::int64_t>(s.size());
  }
  std::int64_t total = 0;
  if (type == json_type::array) {
    std::size_t n = 0;
    for (auto element : value.get_array()) {
      simdjson::ondemand::object block;
      if (element.get_object().get(block)) continue;
      if (info.api == Api::Messages) check_thinking_block(block, n, info);
      if (scan != nullptr) {
        std::string_view view;
        const std::string block_type(
            block.find_field_unordered("type").get_string().get(view) ? std::string_view() : view);
        if (n == 0) scan->first_block_type = block_type;
        total += scan_block(block, block_type, *scan);
      }
      ++n;
      std::string_view text;
      if (!block.find_field_unordered("text").get_string().get(text)) {
        note_markers(text, info);
        if (scan != nullptr) scan->text += text;
        total += static_cast<std::int64_t>(text.size());
      }
    }
  }
  return total;
}

std::int64_t words(std::string_view s) {
  std::int64_t n = 0;
  bool in_word = false;
  for (char c : s) {
    bool space = c == ' ' || c == '\n' || c == '\t';
    if (!space && !in_word) ++n;
    in_word = !space;
  }
  return std::max<std::int64_t>(n, 1);
}

// Cuts `text` into `n` pieces of about equal size, never inside a UTF-8 sequence.
std::vector<std::string_view> cut(std::string_view text, std::size_t n) {
  std::vector<std::string_view> out;
  if (text.empty()) return out;
  n = std::clamp<std::size_t>(n, 1, text.size());
  std::size_t start = 0;
  for (std::size_t i = 1; i <= n && start < text.size(); ++i) {
    std::size_t end = i == n ? text.size() : text.size() * i / n;
    while (end < text.size() && (static_cast<unsigned char>(text[end]) & 0xC0) == 0x80) ++end;
    if (end > start) out.push_back(text.substr(start, end - start));
    start = end;
  }
  return out;
}

std::int64_t unix_now() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string sse(std::string_view data) {
  std::string e;
  e.reserve(data.size() + 8);
  e += "data: ";
  e += data;
  e += "\n\n";
  return e;
}

std::string sse(std::string_view event, std::string_view data) {
  std::string e;
  e.reserve(event.size() + data.size() + 16);
  e += "event: ";
  e += event;
  e += "\ndata: ";
  e += data;
  e += "\n\n";
  return e;
}

struct Usage {
  std::int64_t prompt;
  std::int64_t completion;
  bool details = false;  // send the cached / reasoning / cache counts (derived below)
  std::int64_t cached() const { return prompt / 2; }  // OpenAI cached / Anthropic cache read
  std::int64_t cache_creation() const { return prompt / 4; }  // Anthropic only
  std::int64_t reasoning() const { return completion / 2; }
};

// What a refusing mock says (OpenAI message.refusal / delta.refusal).
constexpr std::string_view kRefusalText = "I'm sorry, but I can't help with that request.";

// Z.AI web_search results (docs.z.ai/api-reference/llm/chat-completion: icon, title, link,
// media, publish_date, content, refer).
constexpr std::string_view kWebSearchJson =
    R"([{"icon":"https://mock.example/icon.png","title":"Mock search result",)"
    R"("link":"https://mock.example/result","media":"Mock","publish_date":"2026-01-01",)"
    R"("content":"What the mock found.","refer":"ref_1"}])";

// `answer`: the reply text, or the tool call's arguments.
Usage usage_for(const RequestInfo& info, std::string_view answer, const Fault* fault) {
  Usage u{std::max<std::int64_t>(1, (info.prompt_chars + 3) / 4), words(answer),
          info.usage_details};
  if (fault != nullptr && fault->prompt_tokens) u.prompt = *fault->prompt_tokens;
  if (fault != nullptr && fault->completion_tokens) u.completion = *fault->completion_tokens;
  return u;
}

void append_int(std::string& out, std::int64_t v) { out += std::to_string(v); }

void append_openai_usage(std::string& out, Usage u) {
  out += R"("usage":{"prompt_tokens":)";
  append_int(out, u.prompt);
  out += R"(,"completion_tokens":)";
  append_int(out, u.completion);
  out += R"(,"total_tokens":)";
  append_int(out, u.prompt + u.completion);
  if (u.details) {
    out += R"(,"prompt_tokens_details":{"cached_tokens":)";
    append_int(out, u.cached());
    out += R"(},"completion_tokens_details":{"reasoning_tokens":)";
    append_int(out, u.reasoning());
    out += '}';
  }
  out += '}';
}

// Anthropic's usage members after "usage":{ — input_tokens without the cached part.
void append_anthropic_input(std::string& out, Usage u);

std::string anthropic_input(Usage u) {
  std::string out;
  append_anthropic_input(out, u);
  return out;
}

void append_anthropic_input(std::string& out, Usage u) {
  out += R"("input_tokens":)";
  if (!u.details) {
    append_int(out, u.prompt);
    return;
  }
  append_int(out, u.prompt - u.cached() - u.cache_creation());
  out += R"(,"cache_creation_input_tokens":)";
  append_int(out, u.cache_creation());
  out += R"(,"cache_read_input_tokens":)";
  append_int(out, u.cached());
}

Planned plan_chat(const RequestInfo& info, const MockOptions& options, const Fault* fault,
                  std::uint64_t counter) {
  Planned p;
  const bool think = !options.reasoning_text.empty() && !info.thinking_disabled;
  const bool refuse = info.refusal;
  // A refusal wins over a tool call: the marker is the test's explicit ask.
  const std::optional<ToolCallReply> call = refuse ? std::nullopt : tool_call_reply(info, counter);
  const std::string text = call ? std::string() : reply_text(info, options);
  const Usage usage = usage_for(info, call ? call->arguments : text, fault);
  const std::string_view finish = call ? "tool_calls" : "stop";
  std::string head = R"({"id":"chatcmpl-mock-)" + std::to_string(counter) +
                     R"(","request_id":"req-mock-)" + std::to_string(counter) + R"(","object":)";
  std::string tail = R"(,"created":)" + std::to_string(unix_now()) + R"(,"model":)";
  append_json_string(tail, info.model);
  if (!info.stream) {
    p.headers.emplace_back("Content-Type", "application/json");
    std::string& b = p.body;
    b.reserve(256 + text.size() + options.reasoning_text.size());
    b += head;
    b += R"("chat.completion")";
    b += tail;
    b += R"(,"choices":[{"index":0,"message":{"role":"assistant","content":)";
    if (refuse) {
      b += R"(null,"refusal":)";
      append_json_string(b, kRefusalText);
    } else if (call) {
      // OpenAI chat completions reference: a tool-call turn has content null.
      b += R"(null,"tool_calls":[{"id":)";
      append_json_string(b, call->id);
      b += R"(,"type":"function","function":{"name":)";
      append_json_string(b, call->name);
      b += R"(,"arguments":)";
      append_json_string(b, call->arguments);
      b += "}}]";
    } else {
      append_json_string(b, text);
    }
    if (think) {
      b += R"(,"reasoning_content":)";
      append_json_string(b, options.reasoning_text);
    }
    b += R"(},"finish_reason":")";
    b += finish;
    b += R"("}],)";
    append_openai_usage(b, usage);
    if (info.web_search) {
      b += R"(,"web_search":)";
      b += kWebSearchJson;
    }
    b += '}';
    return p;
  }
  p.sse = true;
  p.headers.emplace_back("Content-Type", "text/event-stream");
  p.headers.emplace_back("Cache-Control", "no-cache");
  const std::string prefix = head + R"("chat.completion.chunk")" + tail + R"(,"choices":[)";
  auto chunk = [&](std::string_view delta_members) {
    p.events.push_back(sse(prefix + R"({"index":0,"delta":{)" + std::string(delta_members) +
                           R"(},"finish_reason":null}]})"));
  };
  auto delta = [&](std::string_view field, std::string_view piece) {
    std::string d = "\"";
    d += field;
    d += "\":";
    append_json_string(d, piece);
    chunk(d);
  };
  // Z.AI sends the web_search results in the first chunk.
  p.events.push_back(sse(
      prefix + R"({"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}])" +
      (info.web_search ? std::string(R"(,"web_search":)") + std::string(kWebSearchJson) : "") +
      "}"));
  if (think) {
    for (std::string_view piece : cut(options.reasoning_text, options.stream_chunks)) {
      delta("reasoning_content", piece);
    }
  }
  if (call) {
    // OpenAI streaming tool calls: id, type and name first with empty arguments, then the
    // arguments string in pieces, each naming the call by its index.
    std::string first = R"("tool_calls":[{"index":0,"id":)";
    append_json_string(first, call->id);
    first += R"(,"type":"function","function":{"name":)";
    append_json_string(first, call->name);
    first += R"(,"arguments":""}}])";
    chunk(first);
    for (std::string_view piece :
         cut(call->arguments, std::max<std::size_t>(2, options.stream_chunks))) {
      std::string d = R"("tool_calls":[{"index":0,"function":{"arguments":)";
      append_json_string(d, piece);
      d += "}}]";
      chunk(d);
    }
  } else {
    for (std::string_view piece :
         cut(refuse ? kRefusalText : std::string_view(text), options.stream_chunks)) {
      delta(refuse ? "refusal" : "content", piece);
    }
  }
  p.events.push_back(
      sse(prefix + R"({"index":0,"delta":{},"finish_reason":")" + std::string(finish) + R"("}]})"));
  if (info.include_usage) {
    std::string u = prefix + "],";
    append_openai_usage(u, usage);
    u += '}';
    p.events.push_back(sse(u));
  }
  p.events.push_back(sse("[DONE]"));
  return p;
}

Planned plan_messages(const RequestInfo& info, const MockOptions& options, const Fault* fault,
                      std::uint64_t counter) {
  Planned p;
  const std::optional<ToolCallReply> call =
      info.refusal ? std::nullopt : tool_call_reply(info, counter);
  const std::string text = call ? std::string() : reply_text(info, options);
  const Usage usage = usage_for(info, call ? call->arguments : text, fault);
  const std::string_view stop_reason = info.refusal ? R"("refusal")"
                                       : call       ? R"("tool_use")"
                                                    : R"("end_turn")";
  const std::string_view thinking = anthropic_thinking_text(info, options);
  const std::string id = "msg_mock_" + std::to_string(counter);
  std::string model;
  append_json_string(model, info.model);
  if (!info.stream) {
    p.headers.emplace_back("Content-Type", "application/json");
    std::string& b = p.body;
    b += R"({"id":")" + id + R"(","type":"message","role":"assistant","model":)" + model;
    b += R"(,"content":[)";
    append_thinking_json(b, thinking, info.redacted_thinking);
    // A refusal (stop_reason "refusal") comes without the reply text.
    if (info.refusal) {
      if (b.back() == ',') b.pop_back();
    } else if (call) {
      b += R"({"type":"tool_use","id":)";
      append_json_string(b, call->id);
      b += R"(,"name":)";
      append_json_string(b, call->name);
      b += R"(,"input":)";
      b += call->arguments;
      b += '}';
    } else {
      b += R"({"type":"text","text":)";
      append_json_string(b, text);
      b += '}';
    }
    b += R"(],"stop_reason":)";
    b += stop_reason;
    b += R"(,"stop_sequence":null,"usage":{)";
    append_anthropic_input(b, usage);
    b += R"(,"output_tokens":)";
    append_int(b, usage.completion);
    b += "}}";
    return p;
  }
  p.sse = true;
  p.headers.emplace_back("Content-Type", "text/event-stream");
  p.headers.emplace_back("Cache-Control", "no-cache");
  p.events.push_back(
      sse("message_start", R"({"type":"message_start","message":{"id":")" + id +
                               R"(","type":"message","role":"assistant","model":)" + model +
                               R"(,"content":[],"stop_reason":null,"stop_sequence":null,)"
                               R"("usage":{)" +
                               anthropic_input(usage) + R"(,"output_tokens":1}}})"));
  int index = 0;
  // One content block: `start_block` its content_block_start JSON, then a delta of
  // `delta_type` carrying `field` per piece.
  auto block = [&](const std::string& start_block, std::string_view delta_type,
                   std::string_view field, const std::vector<std::string_view>& pieces) {
    const std::string idx = std::to_string(index);
    p.events.push_back(sse("content_block_start", R"({"type":"content_block_start","index":)" +
                                                      idx + R"(,"content_block":)" + start_block +
                                                      "}"));
    if (index == 0) p.events.push_back(sse("ping", R"({"type": "ping"})"));
    for (std::string_view piece : pieces) {
      std::string d = R"({"type":"content_block_delta","index":)" + idx + R"(,"delta":{"type":")" +
                      std::string(delta_type) + R"(",")" + std::string(field) + R"(":)";
      append_json_string(d, piece);
      d += "}}";
      p.events.push_back(sse("content_block_delta", d));
    }
    p.events.push_back(
        sse("content_block_stop", R"({"type":"content_block_stop","index":)" + idx + "}"));
    ++index;
  };
  for (auto& [event, data] : thinking_stream_events(
           index, thinking, cut(thinking, options.stream_chunks), info.redacted_thinking)) {
    p.events.push_back(sse(event, data));
  }
  if (call) {
    // Anthropic "Streaming Messages": a tool_use block starts with an empty input, which
    // arrives as input_json_delta pieces of partial JSON.
    std::string start = R"({"type":"tool_use","id":)";
    append_json_string(start, call->id);
    start += R"(,"name":)";
    append_json_string(start, call->name);
    start += R"(,"input":{}})";
    block(start, "input_json_delta", "partial_json",
          cut(call->arguments, std::max<std::size_t>(2, options.stream_chunks)));
  } else if (!info.refusal) {
    block(R"({"type":"text","text":""})", "text_delta", "text", cut(text, options.stream_chunks));
  }
  p.events.push_back(
      sse("message_delta", std::string(R"({"type":"message_delta","delta":{"stop_reason":)") +
                               std::string(stop_reason) +
                               R"(,"stop_sequence":null},"usage":{"output_tokens":)" +
                               std::to_string(usage.completion) + "}}"));
  p.events.push_back(sse("message_stop", R"({"type":"message_stop"})"));
  return p;
}

Planned plan_embeddings(const RequestInfo& info, const Fault* fault) {
  Planned p;
  p.headers.emplace_back("Content-Type", "application/json");
  std::string& b = p.body;
  b += R"({"object":"list","data":[)";
  std::int64_t tokens = 0;
  for (std::size_t i = 0; i < info.embedding_inputs.size(); ++i) {
    const std::string& input = info.embedding_inputs[i];
    tokens += std::max<std::int64_t>(1, static_cast<std::int64_t>(input.size() + 3) / 4);
    // Deterministic vectors (FNV-1a of the input), so callers can check order.
    std::uint64_t h = 1469598103934665603ull;
    for (char c : input) h = (h ^ static_cast<unsigned char>(c)) * 1099511628211ull;
    if (i != 0) b += ',';
    b += R"({"object":"embedding","index":)" + std::to_string(i) + R"(,"embedding":[)";
    for (int k = 0; k < 8; ++k) {
      if (k != 0) b += ',';
      char num[32];
      std::snprintf(num, sizeof num, "%.6f", static_cast<double>((h >> (k * 8)) & 0xFF) / 255.0);
      b += num;
    }
    b += "]}";
  }
  if (fault != nullptr && fault->prompt_tokens) tokens = *fault->prompt_tokens;
  b += R"(],"model":)";
  append_json_string(b, info.model);
  b += R"(,"usage":{"prompt_tokens":)" + std::to_string(tokens) + R"(,"total_tokens":)" +
       std::to_string(tokens) + "}}";
  return p;
}

Planned plan_models() {
  Planned p;
  p.headers.emplace_back("Content-Type", "application/json");
  p.body = R"({"object":"list","data":[)"
           R"({"id":"glm-4.7","object":"model","created":1766000000,"owned_by":"z-ai"},)"
           R"({"id":"glm-4.6","object":"model","created":1759000000,"owned_by":"z-ai"},)"
           R"({"id":"glm-4.5-air","object":"model","created":1753000000,"owned_by":"z-ai"},)"
           R"({"id":"embedding-3","object":"model","created":1740000000,"owned_by":"z-ai"}]})";
  return p;
}

}  // namespace

std::string parse_request(std::string& body, RequestInfo& info) {
  if (info.api == Api::Models || info.api == Api::Unknown) return {};
  // The body string carries simdjson's padding in its spare capacity.
  body.reserve(body.size() + simdjson::SIMDJSON_PADDING);
  thread_local simdjson::ondemand::parser parser;
  simdjson::ondemand::document doc;
  if (auto err =
          parser.iterate(simdjson::padded_string_view(body.data(), body.size(), body.capacity()))
              .get(doc)) {
    return std::string("request body is not JSON: ") + simdjson::error_message(err);
  }
  simdjson::ondemand::object root;
  if (doc.get_object().get(root)) return "request body is not a JSON object";
  for (auto field : root) {
    std::string_view key;
    if (field.unescaped_key().get(key)) return "request body is not valid JSON";
    simdjson::ondemand::value value;
    if (field.value().get(value)) return "request body is not valid JSON";
    if (key == "model") {
      std::string_view s;
      if (value.get_string().get(s)) return "\"model\" must be a string";
      info.model = s;
    } else if (key == "stream") {
      bool b = false;
      if (value.get_bool().get(b)) return "\"stream\" must be a boolean";
      info.stream = b;
    } else if (key == "stream_options") {
      bool b = false;
      if (!value.find_field_unordered("include_usage").get_bool().get(b)) info.include_usage = b;
    } else if (key == "thinking") {
      std::string_view type;
      if (!value.find_field_unordered("type").get_string().get(type)) {
        info.thinking_disabled = type == "disabled";
        info.thinking_enabled = type == "enabled";
      }
    } else if (key == "messages") {
      simdjson::ondemand::array messages;
      if (value.get_array().get(messages)) return "\"messages\" must be an array";
      for (auto m : messages) {
        simdjson::ondemand::object message;
        if (m.get_object().get(message)) return "each message must be an object";
        MessageScan scan;
        for (auto member : message) {
          std::string_view name;
          simdjson::ondemand::value member_value;
          if (member.unescaped_key().get(name) || member.value().get(member_value)) {
            return "request body is not valid JSON";
          }
          if (name == "role") {
            std::string_view role;
            if (!member_value.get_string().get(role)) scan.role = role;
          } else if (name == "content") {
            info.prompt_chars += count_text(member_value, info, &scan);
          }
        }
        finish_message(scan, info);
        ++info.message_index;
      }
    } else if (key == "system") {
      info.prompt_chars += count_text(value, info, nullptr);
    } else if (key == "tools") {
      parse_tools(value, info);
    } else if (key == "tool_choice") {
      parse_tool_choice(value, info);
    } else if (key == "input") {
      json_type type;
      if (value.type().get(type)) return "\"input\" is not valid JSON";
      if (type == json_type::string) {
        std::string_view s;
        if (value.get_string().get(s)) return "\"input\" is not valid JSON";
        info.embedding_inputs.emplace_back(s);
      } else if (type == json_type::array) {
        for (auto element : value.get_array()) {
          std::string_view s;
          if (element.get_string().get(s)) return "\"input\" must hold strings";
          info.embedding_inputs.emplace_back(s);
        }
      } else {
        return "\"input\" must be a string or an array of strings";
      }
    }
  }
  if (info.model.empty()) return "\"model\" is required";
  if (info.api == Api::Embeddings && info.embedding_inputs.empty()) return "\"input\" is required";
  return {};
}

Planned plan_response(const RequestInfo& info, const MockOptions& options, const Fault* fault,
                      std::uint64_t counter) {
  switch (info.api) {
    case Api::Chat:
      return plan_chat(info, options, fault, counter);
    case Api::Messages: {
      // Anthropic refuses a thinking block sent back altered, and with thinking on an
      // assistant tool_use turn that does not open with its thinking block.
      const std::string& refused = !info.thinking_error.empty() || !info.thinking_enabled
                                       ? info.thinking_error
                                       : info.tool_use_order_error;
      if (!refused.empty()) {
        Planned p;
        p.status = 400;
        p.headers.emplace_back("Content-Type", "application/json");
        p.body = error_body(Api::Messages, 400, refused);
        return p;
      }
      return plan_messages(info, options, fault, counter);
    }
    case Api::Embeddings:
      return plan_embeddings(info, fault);
    case Api::Models:
      return plan_models();
    case Api::Unknown:
      break;
  }
  Planned p;
  p.status = 404;
  p.headers.emplace_back("Content-Type", "application/json");
  p.body = error_body(Api::Unknown, 404, "no such endpoint on the mock upstream");
  return p;
}

std::string stream_error_event(Api api, const std::string& custom_json) {
  if (api == Api::Messages) {
    return sse(
        "error",
        custom_json.empty()
            ? R"({"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}})"
            : custom_json);
  }
  return sse(
      custom_json.empty()
          ? R"({"error":{"code":"1305","message":"The service may be temporarily overloaded, please try again later","type":"server_error"}})"
          : custom_json);
}

}  // namespace glmproxy::mock::detail
