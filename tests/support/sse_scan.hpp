#pragma once

// What the mock's own tests need of a raw response: the SSE events' data and names, and a
// parsed JSON document (test-only; the library has real parsers).

#include <simdjson.h>

#include <catch2/catch.hpp>
#include <string>
#include <vector>

namespace test_support {

/// The values of every SSE line of `body` that starts with `field` (e.g. "data: ").
inline std::vector<std::string> sse_fields(const std::string& body, const std::string& field) {
  std::vector<std::string> out;
  std::size_t pos = 0;
  while ((pos = body.find(field, pos)) != std::string::npos) {
    std::size_t end = body.find('\n', pos);
    out.push_back(body.substr(pos + field.size(), end - pos - field.size()));
    pos = end;
  }
  return out;
}

/// The data payloads of every SSE event in `body`.
inline std::vector<std::string> sse_data(const std::string& body) {
  return sse_fields(body, "data: ");
}

/// The event names of every SSE event in `body`.
inline std::vector<std::string> sse_event_names(const std::string& body) {
  return sse_fields(body, "event: ");
}

/// `json` parsed (fails the test case, showing the text, when it is not JSON).
inline simdjson::dom::element parse(simdjson::dom::parser& parser, const std::string& json) {
  simdjson::dom::element doc;
  auto err = parser.parse(json).get(doc);
  INFO(json);
  REQUIRE(err == simdjson::SUCCESS);
  return doc;
}

}  // namespace test_support
