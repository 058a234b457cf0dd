#include "protocol/sse.hpp"

#include <fmt/format.h>

#include <cstring>
#include <limits>

namespace glmproxy::detail {

namespace {

constexpr std::string_view kBom = "\xEF\xBB\xBF";

bool all_digits(std::string_view s) noexcept {
  if (s.empty()) return false;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
  }
  return true;
}

}  // namespace

SseParser::SseParser(SseLimits limits, BufferPool* pool)
    : limits_(limits), line_(pool), data_(pool) {}

void SseParser::reset() noexcept {
  line_.clear();
  data_.clear();
  type_.clear();
  id_.clear();
  retry_ms_.reset();
  error_.reset();
  bytes_ = 0;
  bom_seen_ = 0;
  at_start_ = true;
  skip_lf_ = false;
}

SseParser::Status SseParser::fail(std::string message) {
  error_ = make_error(ErrorCode::BadResponse, std::move(message));
  // The failed event is dropped here, so finish() says the same however the bytes were cut (a
  // line may fail while still in line_, or before it was copied there).
  line_.clear();
  data_.clear();
  type_.clear();
  return Status::Failed;
}

SseParser::Status SseParser::feed(std::string_view chunk, SseSink& sink) {
  if (error_) return Status::Failed;
  bytes_ += chunk.size();
  const char* p = chunk.data();
  const char* const end = p + chunk.size();

  if (at_start_) {
    // WHATWG: one leading U+FEFF is skipped; it may arrive split over chunks.
    while (p < end && bom_seen_ < kBom.size()) {
      if (*p == kBom[bom_seen_]) {
        ++bom_seen_;
        ++p;
        continue;
      }
      // Not a BOM after all: the bytes matched so far start the first line.
      line_.append(kBom.substr(0, bom_seen_));
      bom_seen_ = static_cast<std::uint8_t>(kBom.size());
    }
    if (bom_seen_ < kBom.size()) return Status::Ok;
    at_start_ = false;
  }
  if (skip_lf_ && p < end) {
    // The previous chunk ended with CR: an LF here completes that CRLF, it is no empty line.
    if (*p == '\n') ++p;
    skip_lf_ = false;
  }

  // The next LF is remembered, so a stream of CR-only lines does not rescan the chunk per line.
  const char* next_lf = nullptr;
  bool lf_known = false;
  while (p < end) {
    if (!lf_known || (next_lf != nullptr && next_lf < p)) {
      next_lf = static_cast<const char*>(std::memchr(p, '\n', static_cast<std::size_t>(end - p)));
      lf_known = true;
    }
    const char* limit = next_lf != nullptr ? next_lf : end;
    const char* eol =
        static_cast<const char*>(std::memchr(p, '\r', static_cast<std::size_t>(limit - p)));
    if (eol == nullptr) eol = next_lf;
    if (eol == nullptr) {
      // The line goes on in the next chunk.
      const auto n = static_cast<std::size_t>(end - p);
      if (line_.size() + n > limits_.max_line_bytes) {
        return fail(fmt::format("SSE line longer than {} bytes (GLMPROXY_SSE_MAX_LINE_BYTES)",
                                limits_.max_line_bytes));
      }
      line_.append({p, n});
      return Status::Ok;
    }
    std::string_view line(p, static_cast<std::size_t>(eol - p));
    if (!line_.empty()) {
      if (line_.size() + line.size() > limits_.max_line_bytes) {
        return fail(fmt::format("SSE line longer than {} bytes (GLMPROXY_SSE_MAX_LINE_BYTES)",
                                limits_.max_line_bytes));
      }
      line_.append(line);
      line = line_.view();
    } else if (line.size() > limits_.max_line_bytes) {
      return fail(fmt::format("SSE line longer than {} bytes (GLMPROXY_SSE_MAX_LINE_BYTES)",
                              limits_.max_line_bytes));
    }
    p = eol + 1;
    if (*eol == '\r') {
      // WHATWG: CRLF, a lone CR and a lone LF each end a line.
      if (p < end) {
        if (*p == '\n') ++p;
      } else {
        skip_lf_ = true;
      }
    }
    const bool go_on = process_line(line, sink);
    line_.clear();
    if (!go_on) return error_ ? Status::Failed : Status::Stopped;
  }
  return Status::Ok;
}

bool SseParser::process_line(std::string_view line, SseSink& sink) {
  if (line.empty()) return dispatch(sink);
  if (line.front() == ':') return true;  // a comment
  std::string_view field = line;
  std::string_view value;
  if (const auto colon = line.find(':'); colon != std::string_view::npos) {
    field = line.substr(0, colon);
    value = line.substr(colon + 1);
    if (!value.empty() && value.front() == ' ') value.remove_prefix(1);
  }
  if (field == "data") {
    if (data_.size() + value.size() + 1 > limits_.max_event_bytes) {
      fail(fmt::format("SSE event data larger than {} bytes (GLMPROXY_SSE_MAX_EVENT_BYTES)",
                       limits_.max_event_bytes));
      return false;
    }
    data_.append(value);
    data_.push_back('\n');
  } else if (field == "event") {
    type_.assign(value);
  } else if (field == "id") {
    if (value.find('\0') == std::string_view::npos) id_.assign(value);
  } else if (field == "retry") {
    if (all_digits(value)) {
      std::uint64_t ms = 0;
      for (char c : value) {
        const auto digit = static_cast<std::uint64_t>(c - '0');
        ms = ms > (std::numeric_limits<std::uint64_t>::max() - digit) / 10
                 ? std::numeric_limits<std::uint64_t>::max()
                 : ms * 10 + digit;
      }
      retry_ms_ = ms;
    }
  }
  // Any other field is ignored.
  return true;
}

bool SseParser::dispatch(SseSink& sink) {
  if (data_.empty()) {
    // WHATWG: no data, no event; the event type is forgotten too.
    type_.clear();
    return true;
  }
  data_.pop_back();  // the LF after the last data line
  data_.reserve(data_.size() + kSseDataPadding);
  SseEvent event;
  event.type = type_.empty() ? std::string_view("message") : std::string_view(type_);
  event.data = data_.view();
  event.id = id_;
  const bool go_on = sink.on_sse_event(event);
  data_.clear();
  type_.clear();
  return go_on;
}

bool SseParser::finish() noexcept {
  const bool incomplete = !line_.empty() || !data_.empty() || (at_start_ && bom_seen_ > 0);
  line_.clear();
  data_.clear();
  type_.clear();
  return incomplete;
}

}  // namespace glmproxy::detail
