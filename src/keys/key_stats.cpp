// KeyStats::to_json: the reference gateway's /stats answer.

#include <fmt/format.h>

#include "core/json.hpp"
#include "glmproxy/keys.hpp"

namespace glmproxy {

std::string KeyStats::to_json() const try {
  using detail::append_json_string;
  std::string out = "{\"key\":";
  // The strings come from the key file, already checked as UTF-8 when it was read.
  append_json_string(out, key);
  out += ",\"name\":";
  append_json_string(out, name);
  out += ",\"model\":";
  append_json_string(out, model);
  out += fmt::format(",\"token_limit_per_5h\":{}", token_limit_per_5h);
  out += ",\"expiry_date\":";
  if (expiry_date.empty()) {
    out += "null";
  } else {
    append_json_string(out, expiry_date);
  }
  out += ",\"created_at\":";
  append_json_string(out, created_at);
  out += ",\"last_used\":";
  if (last_used.empty()) {
    out += "null";
  } else {
    append_json_string(out, last_used);
  }
  out += is_expired ? ",\"is_expired\":true" : ",\"is_expired\":false";
  out += fmt::format(",\"current_usage\":{{\"tokens_used_in_current_window\":{}",
                     current_usage.tokens_used_in_current_window);
  out += ",\"window_started_at\":";
  append_json_string(out, current_usage.window_started_at);
  out += ",\"window_ends_at\":";
  append_json_string(out, current_usage.window_ends_at);
  out += fmt::format(",\"remaining_tokens\":{}}}", current_usage.remaining_tokens);
  out += fmt::format(",\"total_lifetime_tokens\":{}}}", total_lifetime_tokens);
  return out;
} catch (...) {
  // Nothing leaves the library as an exception.
  return std::string();
}

}  // namespace glmproxy
