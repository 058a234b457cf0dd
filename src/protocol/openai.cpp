// OpenAI chat/completions (Z.AI /api/paas/v4): the request writer and the response parser.

#include <simdjson.h>

#include <fmt/format.h>

#include <algorithm>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "protocol/internal.hpp"
#include "protocol/protocol.hpp"

namespace glmproxy::detail {

namespace {

// One content part, OpenAI / Z.AI shape. OpenAI chat completions reference ("content parts":
// text, image_url {url, detail}); Z.AI chat completion reference, vision models (image_url,
// video_url, file_url, each {"url": ...}). Base64 images go as a data: URL, as OpenAI documents.
Result<void> append_part(std::string& out, const ContentPart& part, std::size_t message,
                         std::size_t index) {
  using Type = ContentPart::Type;
  switch (part.type) {
    case Type::Text:
      out += R"({"type":"text","text":)";
      if (auto ok = append_part_string(out, part.text, message, index, "text"); !ok) return ok;
      break;
    case Type::ImageUrl:
    case Type::ImageBase64: {
      out += R"({"type":"image_url","image_url":{"url":)";
      if (part.type == Type::ImageUrl) {
        if (auto ok = append_part_string(out, part.url, message, index, "url"); !ok) return ok;
      } else {
        std::string url = "data:" + part.media_type + ";base64," + part.data;
        if (!valid_utf8(part.media_type)) {
          return invalid_utf8(fmt::format("messages[{}].parts[{}].media_type", message, index));
        }
        if (auto ok = append_part_string(out, url, message, index, "data"); !ok) return ok;
      }
      if (!part.detail.empty()) {
        out += R"(,"detail":)";
        if (auto ok = append_part_string(out, part.detail, message, index, "detail"); !ok) {
          return ok;
        }
      }
      out += '}';
      break;
    }
    case Type::VideoUrl:
      out += R"({"type":"video_url","video_url":{"url":)";
      if (auto ok = append_part_string(out, part.url, message, index, "url"); !ok) return ok;
      out += '}';
      break;
    case Type::FileUrl:
      out += R"({"type":"file_url","file_url":{"url":)";
      if (auto ok = append_part_string(out, part.url, message, index, "url"); !ok) return ok;
      out += '}';
      break;
  }
  out += '}';
  return {};
}

// Typed tool calls as OpenAI's tool_calls array: [{id, type:"function", function:{name,
// arguments}}], arguments the string they are (OpenAI chat completions reference, assistant
// message). "" becomes "{}": an empty string is not JSON and servers that parse it reject it.
Result<void> append_tool_calls(std::string& out, const Message& message, std::size_t index) {
  out += '[';
  for (std::size_t j = 0; j < message.tool_calls.size(); ++j) {
    const ToolCall& call = message.tool_calls[j];
    const auto field = [&](std::string_view name) {
      return fmt::format("messages[{}].tool_calls[{}].{}", index, j, name);
    };
    if (j != 0) out += ',';
    out += R"({"id":)";
    if (!append_json_string(out, call.id)) return invalid_utf8(field("id"));
    out += R"(,"type":"function","function":{"name":)";
    if (!append_json_string(out, call.name)) return invalid_utf8(field("name"));
    out += R"(,"arguments":)";
    if (!append_json_string(out, call.arguments_json.empty() ? "{}" : call.arguments_json)) {
      return invalid_utf8(field("arguments_json"));
    }
    out += "}}";
  }
  out += ']';
  return {};
}

// {"role":"...","content":"..."} and the per-role extras. Returns the field that was not UTF-8.
Result<void> append_message(std::string& out, const Message& message, std::size_t index,
                            simdjson::dom::parser& parser) {
  const auto field = [index](std::string_view name) {
    return fmt::format("messages[{}].{}", index, name);
  };
  out += "{\"role\":";
  append_json_string(out, message.role);  // one of the four names (validated)
  const bool is_assistant = message.role == "assistant";
  if (!is_assistant && !message.reasoning_content.empty()) {
    return invalid_argument(
        fmt::format("{} is only for assistant messages, got role \"{}\"",
                    field("reasoning_content"), message.role));
  }
  const bool has_tool_calls =
      is_assistant && (!message.tool_calls_json.empty() || !message.tool_calls.empty());
  if (message.role == "tool") {
    out += ",\"tool_call_id\":";
    if (!append_json_string(out, message.tool_call_id)) return invalid_utf8(field("tool_call_id"));
  }
  out += ",\"content\":";
  if (!message.parts.empty()) {
    out += '[';
    if (!message.content.empty()) {
      out += R"({"type":"text","text":)";
      if (!append_json_string(out, message.content)) return invalid_utf8(field("content"));
      out += "},";
    }
    for (std::size_t j = 0; j < message.parts.size(); ++j) {
      if (j != 0) out += ',';
      if (auto ok = append_part(out, message.parts[j], index, j); !ok) return ok;
    }
    out += ']';
  } else if (has_tool_calls && message.content.empty()) {
    out += "null";  // OpenAI: an assistant turn that only calls tools has no content
  } else if (!append_json_string(out, message.content)) {
    return invalid_utf8(field("content"));
  }
  // Z.AI thinking mode (https://docs.z.ai/guides/capabilities/thinking-mode, "preserved
  // thinking"): the reasoning_content an assistant turn was returned with goes back on that
  // turn, so a tool loop keeps its chain of thought.
  if (!message.reasoning_content.empty()) {
    out += ",\"reasoning_content\":";
    if (!append_json_string(out, message.reasoning_content)) {
      return invalid_utf8(field("reasoning_content"));
    }
  }
  if (has_tool_calls && !message.tool_calls.empty()) {
    out += ",\"tool_calls\":";
    if (auto ok = append_tool_calls(out, message, index); !ok) return ok;
  } else if (has_tool_calls) {
    simdjson::dom::element root;
    if (auto error =
            parser.parse(message.tool_calls_json.data(), message.tool_calls_json.size(), true)
                .get(root)) {
      return invalid_argument(fmt::format("{} must be a JSON array, but it is not valid JSON ({})",
                                          field("tool_calls_json"),
                                          simdjson::error_message(error)));
    }
    if (!root.is_array()) {
      return invalid_argument(fmt::format("{} must be a JSON array", field("tool_calls_json")));
    }
    out += ",\"tool_calls\":";
    out += simdjson::minify(root);
  }
  out += '}';
  return {};
}

// tools[]: {"type":"function","function":{name, description?, parameters?, strict?}} (OpenAI
// chat completions reference, "tools"; Z.AI chat completion reference, "tools" of type function).
Result<void> append_tools(std::string& out, const std::vector<Tool>& tools) {
  out += '[';
  for (std::size_t i = 0; i < tools.size(); ++i) {
    const Tool& tool = tools[i];
    const auto field = [i](std::string_view name) { return fmt::format("tools[{}].{}", i, name); };
    if (i != 0) out += ',';
    out += R"({"type":"function","function":{"name":)";
    if (!append_json_string(out, tool.name)) return invalid_utf8(field("name"));
    if (!tool.description.empty()) {
      out += R"(,"description":)";
      if (!append_json_string(out, tool.description)) return invalid_utf8(field("description"));
    }
    if (!tool.parameters_json.empty()) {
      auto schema = json_object_text(tool.parameters_json, field("parameters_json"));
      if (!schema) return std::move(schema).error();
      out += R"(,"parameters":)";
      out += *schema;
    }
    if (tool.strict) out += *tool.strict ? R"(,"strict":true)" : R"(,"strict":false)";
    out += "}}";
  }
  out += ']';
  return {};
}

// "auto" | "none" | "required" | {"type":"function","function":{"name":...}} (OpenAI reference).
Result<void> append_tool_choice(std::string& out, const ToolChoice& choice) {
  switch (choice.type) {
    case ToolChoice::Type::Auto:
      out += R"("auto")";
      break;
    case ToolChoice::Type::None:
      out += R"("none")";
      break;
    case ToolChoice::Type::Required:
      out += R"("required")";
      break;
    case ToolChoice::Type::Function:
      out += R"({"type":"function","function":{"name":)";
      if (!append_json_string(out, choice.name)) return invalid_utf8("tool_choice.name");
      out += "}}";
      break;
  }
  return {};
}

// {"type":"text"} | {"type":"json_object"} | {"type":"json_schema","json_schema":{name,
// description?, schema, strict?}} (OpenAI chat completions reference, "response_format"; Z.AI
// documents text and json_object).
Result<void> append_response_format(std::string& out, const ResponseFormat& format) {
  switch (format.type) {
    case ResponseFormat::Type::Text:
      out += R"({"type":"text"})";
      break;
    case ResponseFormat::Type::JsonObject:
      out += R"({"type":"json_object"})";
      break;
    case ResponseFormat::Type::JsonSchema: {
      auto schema = json_object_text(format.schema_json, "response_format.schema_json");
      if (!schema) return std::move(schema).error();
      out += R"({"type":"json_schema","json_schema":{"name":)";
      if (!append_json_string(out, format.name)) return invalid_utf8("response_format.name");
      if (!format.description.empty()) {
        out += R"(,"description":)";
        if (!append_json_string(out, format.description)) {
          return invalid_utf8("response_format.description");
        }
      }
      out += R"(,"schema":)";
      out += *schema;
      if (format.strict) out += *format.strict ? R"(,"strict":true)" : R"(,"strict":false)";
      out += "}}";
      break;
    }
  }
  return {};
}

// A GLM model on Z.AI: its name starts with "glm" (any case). Only those get Z.AI's sampling
// rule; other OpenAI-compatible servers are sent what was asked.
bool is_glm_model(std::string_view model) {
  return model.size() >= 3 && (model[0] | 0x20) == 'g' && (model[1] | 0x20) == 'l' &&
         (model[2] | 0x20) == 'm';
}

struct Sampling {
  std::optional<double> temperature;
  std::optional<bool> do_sample;
};

// Z.AI refuses temperature 0 while do_sample is true (its default). Its Python SDK rewrites
// temperature <= 0 to do_sample false with temperature 0.01 (which then has no effect); glmproxy
// does the same for a GLM model when do_sample is unset, and refuses the contradiction when the
// caller set do_sample true. docs/protocols.md "Sampling on Z.AI".
Result<Sampling> zai_sampling(const ChatRequest& request, std::string_view model) {
  Sampling s{request.temperature, request.do_sample};
  if (!s.temperature || *s.temperature > 0 || !is_glm_model(model)) return s;
  if (s.do_sample.value_or(false)) {
    return invalid_argument(fmt::format(
        "temperature {} with do_sample true: Z.AI refuses it (temperature must be above 0 "
        "when sampling); leave do_sample unset or false for greedy decoding",
        *s.temperature));
  }
  s.temperature = 0.01;
  s.do_sample = false;
  return s;
}

}  // namespace

Result<std::string> write_openai_request(const ChatRequest& request, std::string_view model,
                                         bool stream) {
  if (auto valid = validate_request(request, model); !valid) return std::move(valid).error();
  auto sampling = zai_sampling(request, model);
  if (!sampling) return std::move(sampling).error();
  auto extra = parse_extra_json(request.extra_json);
  if (!extra) return std::move(extra).error();

  std::size_t estimate = 256 + request.extra_json.size() + request.user_id.size() +
                         request.body_request_id.size();
  if (request.system) estimate += request.system->size();
  for (const Message& m : request.messages) {
    estimate += 64 + m.content.size() + m.tool_calls_json.size();
    for (const ContentPart& p : m.parts)
      estimate += 64 + p.text.size() + p.url.size() + p.data.size();
  }
  std::string out;
  out.reserve(estimate);

  TopLevelWriter top(out, *extra);
  if (top.key("model")) append_json_string(out, model);  // UTF-8 checked by validate_request
  if (top.key("messages")) {
    out += '[';
    bool first = true;
    if (request.system && !request.system->empty()) {
      out += "{\"role\":\"system\",\"content\":";
      if (!append_json_string(out, *request.system)) return invalid_utf8("system");
      out += '}';
      first = false;
    }
    ScratchParser scratch;
    for (std::size_t i = 0; i < request.messages.size(); ++i) {
      if (!first) out += ',';
      first = false;
      if (auto ok = append_message(out, request.messages[i], i, scratch.get()); !ok) {
        return std::move(ok).error();
      }
    }
    out += ']';
  }
  if (sampling->temperature && top.key("temperature")) append_double(out, *sampling->temperature);
  if (request.top_p && top.key("top_p")) append_double(out, *request.top_p);
  if (sampling->do_sample && top.key("do_sample")) out += *sampling->do_sample ? "true" : "false";
  if (request.max_tokens && top.key("max_tokens")) append_int(out, *request.max_tokens);
  if (!request.stop.empty() && top.key("stop")) {
    std::size_t bad = 0;
    if (!append_string_array(out, request.stop, bad)) {
      return invalid_utf8(fmt::format("stop[{}]", bad));
    }
  }
  if (request.seed && top.key("seed")) append_int(out, *request.seed);
  if (request.thinking && top.key("thinking")) {
    out += *request.thinking ? R"({"type":"enabled"})" : R"({"type":"disabled"})";
  }
  if (!request.tools.empty() && top.key("tools")) {
    if (auto ok = append_tools(out, request.tools); !ok) return std::move(ok).error();
  }
  if (request.tool_choice && top.key("tool_choice")) {
    if (auto ok = append_tool_choice(out, *request.tool_choice); !ok) {
      return std::move(ok).error();
    }
  }
  if (request.response_format && top.key("response_format")) {
    if (auto ok = append_response_format(out, *request.response_format); !ok) {
      return std::move(ok).error();
    }
  }
  if (request.tool_stream && top.key("tool_stream")) {
    out += *request.tool_stream ? "true" : "false";
  }
  // UTF-8 of both checked by validate_request.
  if (!request.user_id.empty() && top.key("user_id")) append_json_string(out, request.user_id);
  if (!request.body_request_id.empty() && top.key("request_id")) {
    append_json_string(out, request.body_request_id);
  }
  // An extra_json "stream" decides alone: stream_options is only valid next to stream:true.
  if (stream && top.key("stream")) {
    out += "true";
    if (top.key("stream_options")) out += R"({"include_usage":true})";
  }
  top.finish();
  return out;
}

Result<ChatResponse> parse_openai_response(std::string& body) {
  ScratchParser scratch;
  simdjson::dom::element root;
  if (auto error = scratch.parse(body, root)) return unparsable(error);
  simdjson::dom::object object;
  if (root.get_object().get(object)) return bad_response("response body is not a JSON object");
  if (auto error = error_in_body(Protocol::OpenAI, object, 200)) return std::move(*error);

  ChatResponse response;
  auto id = optional_string(object, "id", "id");
  if (!id) return std::move(id).error();
  auto model = optional_string(object, "model", "model");
  if (!model) return std::move(model).error();
  response.id = *id;
  response.model = *model;
  // Z.AI's own request id and the reply's creation time (OpenAI and Z.AI chat.completion).
  auto request_id = optional_string(object, "request_id", "request_id");
  if (!request_id) return std::move(request_id).error();
  response.request_id = *request_id;
  // Informational only: a `created` that is no integer (some compatible servers send a float)
  // is left at 0 rather than failing the reply.
  if (const auto created = member(object, "created")) {
    std::int64_t seconds = 0;
    if (!created->get_int64().get(seconds)) response.created = std::max<std::int64_t>(seconds, 0);
  }
  // Z.AI: the results of a web_search tool call, kept as received.
  if (const auto web_search = member(object, "web_search")) {
    if (!web_search->is_array()) return bad_response("web_search is not an array");
    response.web_search_json = simdjson::minify(*web_search);
  }

  simdjson::dom::array choices;
  const auto choices_value = member(object, "choices");
  if (!choices_value || choices_value->get_array().get(choices)) {
    return bad_response("response has no \"choices\" array");
  }
  simdjson::dom::element first_choice;
  simdjson::dom::object choice;
  if (choices.at(0).get(first_choice))
    return bad_response("response has an empty \"choices\" array");
  if (first_choice.get_object().get(choice)) return bad_response("choices[0] is not an object");

  auto finish = optional_string(choice, "finish_reason", "choices[0].finish_reason");
  if (!finish) return std::move(finish).error();
  response.finish_reason = *finish;

  simdjson::dom::object message;
  const auto message_value = member(choice, "message");
  if (!message_value || message_value->get_object().get(message)) {
    return bad_response("choices[0] has no \"message\" object");
  }
  if (const auto content = member(message, "content")) {
    std::string_view text;
    simdjson::dom::array parts;
    if (!content->get_string().get(text)) {
      response.content = text;
    } else if (!content->get_array().get(parts)) {
      // Content parts ([{"type":"text","text":...}]), as some compatible servers answer.
      for (simdjson::dom::element part : parts) {
        std::string_view part_text;
        if (!part["text"].get_string().get(part_text)) response.content += part_text;
      }
    } else {
      return bad_response("choices[0].message.content is neither a string nor null");
    }
  }
  auto reasoning =
      optional_string(message, "reasoning_content", "choices[0].message.reasoning_content");
  if (!reasoning) return std::move(reasoning).error();
  response.reasoning_content = *reasoning;
  auto refusal = optional_string(message, "refusal", "choices[0].message.refusal");
  if (!refusal) return std::move(refusal).error();
  response.refusal = *refusal;

  if (const auto calls_value = member(message, "tool_calls")) {
    simdjson::dom::array calls;
    if (calls_value->get_array().get(calls)) {
      return bad_response("choices[0].message.tool_calls is not an array");
    }
    std::size_t index = 0;
    for (simdjson::dom::element call_value : calls) {
      const std::string path = fmt::format("choices[0].message.tool_calls[{}]", index++);
      simdjson::dom::object call;
      simdjson::dom::object function;
      if (call_value.get_object().get(call)) return bad_response(path + " is not an object");
      const auto function_value = member(call, "function");
      if (!function_value || function_value->get_object().get(function)) {
        return bad_response(path + " has no \"function\" object");
      }
      ToolCall tool_call;
      auto call_id = optional_string(call, "id", path + ".id");
      if (!call_id) return std::move(call_id).error();
      tool_call.id = *call_id;
      std::string_view name;
      if (function["name"].get_string().get(name)) {
        return bad_response(path + ".function.name is missing or not a string");
      }
      tool_call.name = name;
      if (const auto arguments = member(function, "arguments")) {
        std::string_view text;
        if (!arguments->get_string().get(text)) {
          tool_call.arguments_json = text;
        } else {
          tool_call.arguments_json = simdjson::minify(*arguments);  // an object, not a string
        }
      }
      response.tool_calls.push_back(std::move(tool_call));
    }
  }

  if (const auto usage_value = member(object, "usage")) {
    simdjson::dom::object usage;
    if (usage_value->get_object().get(usage)) return bad_response("usage is not an object");
    auto counts = openai_usage_counts(usage);
    if (!counts) return std::move(counts).error();
    response.usage = make_usage(*counts);
  }
  response.raw_json = body;
  return response;
}

}  // namespace glmproxy::detail
