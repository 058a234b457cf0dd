// OpenAI POST /embeddings (Z.AI embedding-3): the request writer and the response parser.

#include <simdjson.h>

#include <fmt/format.h>

#include <cmath>
#include <limits>

#include <string>
#include <string_view>

#include "protocol/internal.hpp"
#include "protocol/protocol.hpp"

namespace glmproxy::detail {

Result<std::string> write_embedding_request(const std::vector<std::string_view>& inputs,
                                            std::string_view model, std::optional<int> dimensions,
                                            std::string_view extra_json) {
  if (inputs.empty()) return invalid_argument("EmbeddingRequest::input must not be empty");
  if (model.empty()) return invalid_argument("the embedding model must not be empty");
  if (dimensions && *dimensions <= 0) {
    return invalid_argument(
        fmt::format("EmbeddingRequest::dimensions must be positive, got {}", *dimensions));
  }
  auto extra = parse_extra_json(extra_json);
  if (!extra) return std::move(extra).error();
  std::string out;
  std::size_t total = 64 + model.size();
  for (std::string_view s : inputs) total += s.size() + 3;
  out.reserve(total);
  TopLevelWriter top(out, *extra);
  if (top.key("model") && !append_json_string(out, model)) return invalid_utf8("model");
  if (top.key("input")) {
    out += '[';
    for (std::size_t i = 0; i < inputs.size(); ++i) {
      if (i != 0) out += ',';
      if (!append_json_string(out, inputs[i])) return invalid_utf8(fmt::format("input[{}]", i));
    }
    out += ']';
  }
  if (dimensions && top.key("dimensions")) append_int(out, *dimensions);
  top.finish();
  return out;
}

Result<EmbeddingResponse> parse_embedding_response(std::string& body, std::size_t expected) {
  ScratchParser scratch;
  simdjson::dom::element root;
  if (auto error = scratch.parse(body, root)) return unparsable(error);
  simdjson::dom::object object;
  if (root.get_object().get(object)) return bad_response("the embeddings answer is not an object");
  if (auto e = error_in_body(Protocol::OpenAI, object, 200)) return std::move(*e);
  EmbeddingResponse out;
  auto model = optional_string(object, "model", "model");
  if (!model) return std::move(model).error();
  out.model = std::string(*model);
  simdjson::dom::array data;
  if (object["data"].get_array().get(data)) {
    return bad_response("the embeddings answer has no \"data\" array");
  }
  out.embeddings.resize(expected);
  std::vector<bool> seen(expected, false);
  std::size_t position = 0;
  for (simdjson::dom::element item : data) {
    simdjson::dom::object entry;
    if (item.get_object().get(entry)) return bad_response("data[] entry is not an object");
    // Answers carry their input's index; without one, the order of data[] is the order.
    std::int64_t index = static_cast<std::int64_t>(position);
    auto given = optional_int(entry, "index", "data[].index");
    if (!given) return std::move(given).error();
    if (*given) index = **given;
    ++position;
    if (index < 0 || static_cast<std::size_t>(index) >= expected ||
        seen[static_cast<std::size_t>(index)]) {
      return bad_response(fmt::format(
          "data[] index {} is out of range or repeated ({} inputs were sent)", index, expected));
    }
    simdjson::dom::array vector;
    if (entry["embedding"].get_array().get(vector)) {
      return bad_response(fmt::format("data[{}].embedding is not an array of numbers", index));
    }
    std::vector<float>& v = out.embeddings[static_cast<std::size_t>(index)];
    for (simdjson::dom::element x : vector) {
      double d = 0;
      if (x.get_double().get(d)) {
        return bad_response(fmt::format("data[{}].embedding holds a non-number", index));
      }
      // A double outside float's range does not convert (undefined behaviour): refused.
      if (!(std::fabs(d) <= static_cast<double>(std::numeric_limits<float>::max()))) {
        return bad_response(
            fmt::format("data[{}].embedding holds a number outside float's range", index));
      }
      v.push_back(static_cast<float>(d));
    }
    seen[static_cast<std::size_t>(index)] = true;
  }
  for (std::size_t i = 0; i < expected; ++i) {
    if (!seen[i]) {
      return bad_response(
          fmt::format("the embeddings answer has no vector for input {} of {}", i, expected));
    }
  }
  if (auto usage = member(object, "usage")) {
    simdjson::dom::object u;
    if (!usage->get_object().get(u)) {
      auto prompt = optional_count(u, "prompt_tokens", "usage.prompt_tokens");
      auto total = optional_count(u, "total_tokens", "usage.total_tokens");
      if (!prompt) return std::move(prompt).error();
      if (!total) return std::move(total).error();
      out.usage = make_usage(*prompt, std::nullopt, *total);
    }
  }
  return out;
}

}  // namespace glmproxy::detail
