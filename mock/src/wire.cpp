// What the mock writes besides answers: JSON strings, error bodies in each API's style, status
// phrases, and the control endpoint's fault scripts (POST /__mock/faults) and stats.

#include <simdjson.h>

#include <chrono>
#include <string>
#include <string_view>
#include <vector>

#include "responses.hpp"

namespace glmproxy::mock::detail {

namespace {

const char* anthropic_error_type(int status) {
  switch (status) {
    case 400:
      return "invalid_request_error";
    case 401:
      return "authentication_error";
    case 403:
      return "permission_error";
    case 404:
      return "not_found_error";
    case 413:
      return "request_too_large";
    case 429:
      return "rate_limit_error";
    case 529:
      return "overloaded_error";
    default:
      return "api_error";
  }
}

}  // namespace

void append_json_string(std::string& out, std::string_view s) {
  static constexpr char kHex[] = "0123456789abcdef";
  out += '"';
  for (char c : s) {
    auto u = static_cast<unsigned char>(c);
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (u < 0x20) {
          out += "\\u00";
          out += kHex[u >> 4];
          out += kHex[u & 0xF];
        } else {
          out += c;
        }
    }
  }
  out += '"';
}

std::string error_body(Api api, int status, std::string_view message) {
  std::string b;
  if (api == Api::Messages) {
    b = R"({"type":"error","error":{"type":")";
    b += anthropic_error_type(status);
    b += R"(","message":)";
    append_json_string(b, message);
    b += "}}";
  } else {
    b = R"({"error":{"message":)";
    append_json_string(b, message);
    b += R"(,"type":")";
    b += status == 429   ? "rate_limit_error"
         : status >= 500 ? "server_error"
                         : "invalid_request_error";
    b += R"(","code":")" + std::to_string(status) + R"("}})";
  }
  return b;
}

std::string_view reason_phrase(int status) noexcept {
  switch (status) {
    case 100:
      return "Continue";
    case 200:
      return "OK";
    case 201:
      return "Created";
    case 204:
      return "No Content";
    case 400:
      return "Bad Request";
    case 401:
      return "Unauthorized";
    case 403:
      return "Forbidden";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 408:
      return "Request Timeout";
    case 409:
      return "Conflict";
    case 413:
      return "Payload Too Large";
    case 429:
      return "Too Many Requests";
    case 500:
      return "Internal Server Error";
    case 502:
      return "Bad Gateway";
    case 503:
      return "Service Unavailable";
    case 504:
      return "Gateway Timeout";
    case 529:
      return "Site Overloaded";
    default:
      return "Status";
  }
}

std::string parse_faults(std::string& body, std::vector<Fault>& out) {
  body.reserve(body.size() + simdjson::SIMDJSON_PADDING);
  simdjson::dom::parser parser;
  simdjson::dom::element root;
  if (auto err = parser.parse(body.data(), body.size(), false).get(root)) {
    return std::string("faults body is not JSON: ") + simdjson::error_message(err);
  }
  std::vector<simdjson::dom::element> items;
  if (root.is_object()) {
    items.push_back(root);  // a single object is a one-element list
  } else if (simdjson::dom::array array; !root.get_array().get(array)) {
    for (simdjson::dom::element item : array) items.push_back(item);
  } else {
    return "faults body must be a JSON array of objects";
  }
  for (simdjson::dom::element item : items) {
    simdjson::dom::object obj;
    if (item.get_object().get(obj)) return "each fault must be a JSON object";
    Fault f;
    for (auto [key, value] : obj) {
      auto as_int = [&](std::int64_t& v) { return value.get_int64().get(v) == simdjson::SUCCESS; };
      std::int64_t n = 0;
      bool flag = false;
      std::string_view s;
      if (key == "path_contains" && !value.get_string().get(s)) {
        f.path_contains = s;
      } else if (key == "times" && as_int(n)) {
        f.times = static_cast<int>(n);
      } else if (key == "status" && as_int(n)) {
        f.status = static_cast<int>(n);
      } else if (key == "body" && !value.get_string().get(s)) {
        f.body = std::string(s);
      } else if (simdjson::dom::object hobj; key == "headers" && !value.get_object().get(hobj)) {
        for (auto [hk, hv] : hobj) {
          std::string_view hs;
          if (hv.get_string().get(hs)) return "fault header values must be strings";
          f.headers.emplace_back(std::string(hk), std::string(hs));
        }
      } else if (key == "delay_before_headers" && as_int(n)) {
        f.delay_before_headers = Milliseconds(n);
      } else if (key == "delay_between_chunks" && as_int(n)) {
        f.delay_between_chunks = Milliseconds(n);
      } else if (simdjson::dom::array arr; key == "split_pieces" && !value.get_array().get(arr)) {
        for (auto piece : arr) {
          std::int64_t size = 0;
          if (piece.get_int64().get(size) || size <= 0) return "split_pieces must be > 0";
          f.split_pieces.push_back(static_cast<std::size_t>(size));
        }
      } else if (key == "close_after_body_bytes" && as_int(n) && n >= 0) {
        f.close_after_body_bytes = static_cast<std::size_t>(n);
      } else if (key == "malformed_json" && !value.get_bool().get(flag)) {
        f.malformed_json = flag;
      } else if (key == "stream_error_after_events" && as_int(n)) {
        f.stream_error_after_events = static_cast<int>(n);
      } else if (key == "stream_error_json" && !value.get_string().get(s)) {
        f.stream_error_json = s;
      } else if (key == "close_after_response" && !value.get_bool().get(flag)) {
        f.close_after_response = flag;
      } else if (key == "sse_body" && !value.get_string().get(s)) {
        f.sse_body = std::string(s);
      } else if (key == "hold_open" && !value.get_bool().get(flag)) {
        f.hold_open = flag;
      } else if (key == "echo_key" && !value.get_bool().get(flag)) {
        f.echo_key = flag;
      } else if (key == "prompt_tokens" && as_int(n)) {
        f.prompt_tokens = n;
      } else if (key == "completion_tokens" && as_int(n)) {
        f.completion_tokens = n;
      } else {
        return "unknown or mistyped fault field \"" + std::string(key) + "\"";
      }
    }
    out.push_back(std::move(f));
  }
  return {};
}

std::string stats_json(const MockStats& s) {
  std::string b = "{";
  auto field = [&](const char* name, std::uint64_t v, bool last = false) {
    b += '"';
    b += name;
    b += "\":";
    b += std::to_string(v);
    if (!last) b += ',';
  };
  field("connections_accepted", s.connections_accepted);
  field("connections_open", s.connections_open);
  field("requests", s.requests);
  field("chat_requests", s.chat_requests);
  field("messages_requests", s.messages_requests);
  field("embeddings_requests", s.embeddings_requests);
  field("models_requests", s.models_requests);
  field("stream_requests", s.stream_requests);
  field("concurrency_rejections", s.concurrency_rejections);
  field("peak_concurrency", s.peak_concurrency);
  field("tls_handshakes", s.tls_handshakes);
  field("tls_resumed", s.tls_resumed);
  field("faults_applied", s.faults_applied, true);
  b += '}';
  return b;
}

}  // namespace glmproxy::mock::detail
