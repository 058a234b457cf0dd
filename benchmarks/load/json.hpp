#pragma once

// A minimal JSON writer for glmproxy-bench's report: objects and arrays nest, commas are placed
// for you.

#include <fmt/format.h>

#include <cmath>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace glmproxy::bench {

/// Thread safety: not thread-safe (one document, one thread).
class Json {
 public:
  Json& open(char bracket) {
    comma();
    out_ += bracket;
    first_.push_back(true);
    return *this;
  }
  Json& close(char bracket) {
    out_ += bracket;
    first_.pop_back();
    return *this;
  }
  Json& key(std::string_view k) {
    comma();
    string_literal(k);
    out_ += ':';
    after_key_ = true;
    return *this;
  }
  Json& str(std::string_view v) {
    comma();
    string_literal(v);
    return *this;
  }
  Json& num(double v) {
    comma();
    out_ += std::isfinite(v) ? fmt::format("{:.6g}", v) : "null";
    return *this;
  }
  Json& num(std::int64_t v) {
    comma();
    out_ += std::to_string(v);
    return *this;
  }
  Json& num(std::uint64_t v) {
    comma();
    out_ += std::to_string(v);
    return *this;
  }
  Json& num(int v) { return num(static_cast<std::int64_t>(v)); }
  Json& boolean(bool v) {
    comma();
    out_ += v ? "true" : "false";
    return *this;
  }
  Json& null() {
    comma();
    out_ += "null";
    return *this;
  }
  template <class T>
  Json& opt(const std::optional<T>& v) {
    return v ? num(*v) : null();
  }
  std::string take() { return std::move(out_); }

 private:
  void comma() {
    if (after_key_) {
      after_key_ = false;
      return;
    }
    if (!first_.empty()) {
      if (!first_.back()) out_ += ',';
      first_.back() = false;
    }
  }
  void string_literal(std::string_view s) {
    out_ += '"';
    for (const char c : s) {
      switch (c) {
        case '"':
          out_ += "\\\"";
          break;
        case '\\':
          out_ += "\\\\";
          break;
        case '\n':
          out_ += "\\n";
          break;
        case '\r':
          out_ += "\\r";
          break;
        case '\t':
          out_ += "\\t";
          break;
        default:
          if (static_cast<unsigned char>(c) < 0x20) {
            out_ += fmt::format("\\u{:04x}", static_cast<int>(c));
          } else {
            out_ += c;
          }
      }
    }
    out_ += '"';
  }

  std::string out_;
  std::vector<bool> first_;
  bool after_key_ = false;
};

}  // namespace glmproxy::bench
