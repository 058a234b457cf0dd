#include "metrics/profiler.hpp"

#include <fmt/format.h>

#include <algorithm>

#include "core/json.hpp"

namespace glmproxy::detail {

namespace {

std::int64_t micros(std::chrono::steady_clock::duration d) {
  return std::max<std::int64_t>(0,
                                std::chrono::duration_cast<std::chrono::microseconds>(d).count());
}

// Exact summary of `values` (microseconds), sorted in place.
ProfilingReport::Summary summarise(std::vector<std::int64_t>& values) {
  ProfilingReport::Summary s;
  if (values.empty()) return s;
  std::sort(values.begin(), values.end());
  s.count = values.size();
  double sum = 0;
  for (std::int64_t v : values) sum += static_cast<double>(v);
  auto at = [&](double q) {
    const auto i = static_cast<std::size_t>(q * static_cast<double>(values.size() - 1) + 0.5);
    return static_cast<double>(values[std::min(i, values.size() - 1)]) / 1000.0;
  };
  s.avg_ms = sum / static_cast<double>(values.size()) / 1000.0;
  s.p50_ms = at(0.50);
  s.p95_ms = at(0.95);
  s.p99_ms = at(0.99);
  s.max_ms = static_cast<double>(values.back()) / 1000.0;
  return s;
}

// A JSON string; bytes that are not valid UTF-8 become '?' (a caller's request id may be anything).
std::string json_string(std::string_view s) {
  std::string out;
  if (append_json_string(out, s)) return out;
  std::string ascii(s);
  for (char& c : ascii) {
    if (static_cast<unsigned char>(c) >= 0x80) c = '?';
  }
  append_json_string(out, ascii);
  return out;
}

// A caller-built summary may hold NaN or infinity: written as 0.
constexpr auto finite = json_finite;

std::string summary_json(const ProfilingReport::Summary& s) {
  return fmt::format(
      R"({{"count":{},"avg_ms":{},"p50_ms":{},"p95_ms":{},"p99_ms":{},"max_ms":{}}})", s.count,
      finite(s.avg_ms), finite(s.p50_ms), finite(s.p95_ms), finite(s.p99_ms), finite(s.max_ms));
}

}  // namespace

std::shared_ptr<Trace> Profiler::begin(std::string_view request_id, std::string_view api) {
  auto trace = std::make_shared<Trace>();
  trace->request_id =
      request_id.empty()
          ? fmt::format("glmproxy-{}", next_id_.fetch_add(1, std::memory_order_relaxed) + 1)
          : std::string(request_id);
  trace->api = std::string(api);
  return trace;
}

void Profiler::finish(Trace& trace, std::string_view outcome, std::string_view error_code,
                      int http_status) {
  const auto end = Trace::Clock::now();
  RequestProfile p;
  p.request_id = std::move(trace.request_id);
  p.api = std::move(trace.api);
  p.model = std::move(trace.model);
  p.stream = trace.stream;
  p.outcome = outcome == "ok" && trace.coalesced ? "coalesced" : std::string(outcome);
  p.error_code = std::string(error_code);
  p.http_status = http_status;
  p.started_at = trace.started_at;
  auto& m = p.at_us;
  if (trace.cache) m.cache = micros(*trace.cache - trace.start);
  if (trace.first_token) m.first_token = micros(*trace.first_token - trace.start);
  m.done = micros(end - trace.start);
  if (const TransferMarks* t = trace.transfer.get(); t != nullptr && t->attempts > 0) {
    p.attempts = t->attempts;
    p.connection_reused = t->reused_connection;
    p.bytes_sent = t->bytes_sent;
    p.bytes_received = t->bytes_received;
    m.queued = micros(t->submitted - trace.start);
    const std::int64_t admitted = micros(t->admitted - trace.start);
    m.admitted = admitted;
    auto after = [&](std::int64_t us) { return us < 0 ? -1 : admitted + us; };
    m.dns = after(t->dns_us);
    m.connect = after(t->connect_us);
    m.tls = after(t->tls_us);
    m.request_sent = after(t->sent_us);
    m.first_byte = after(t->first_byte_us);
  }
  std::lock_guard lock(mu_);
  ++recorded_;
  if (ring_.size() < capacity_) {
    ring_.push_back(std::move(p));
  } else {
    ring_[next_] = std::move(p);
    next_ = (next_ + 1) % capacity_;
  }
}

ProfilingReport Profiler::report(std::size_t slowest) const {
  ProfilingReport r;
  r.enabled = true;
  r.capacity = capacity_;
  std::vector<std::int64_t> total, queue_wait, upstream;
  {
    // Under the lock only what is needed: the numbers to summarise and the slowest profiles
    // (found in linear time); the sorting happens after, while requests record freely.
    std::lock_guard lock(mu_);
    r.kept = ring_.size();
    r.recorded = recorded_;
    total.reserve(ring_.size());
    for (const RequestProfile& p : ring_) {
      total.push_back(p.at_us.done);
      if (p.at_us.admitted >= 0) {
        queue_wait.push_back(p.at_us.admitted);
        if (p.at_us.first_byte >= 0) upstream.push_back(p.at_us.first_byte - p.at_us.admitted);
      }
    }
    const std::size_t n = std::min(slowest, ring_.size());
    if (n > 0) {
      std::vector<std::pair<std::int64_t, std::size_t>> order;
      order.reserve(ring_.size());
      for (std::size_t i = 0; i < ring_.size(); ++i) order.emplace_back(ring_[i].at_us.done, i);
      const auto by_time = [](const auto& a, const auto& b) { return a.first > b.first; };
      std::nth_element(order.begin(), order.begin() + static_cast<std::ptrdiff_t>(n - 1),
                       order.end(), by_time);
      order.resize(n);
      std::sort(order.begin(), order.end(), by_time);
      r.slowest.reserve(n);
      for (const auto& [done, i] : order) r.slowest.push_back(ring_[i]);
    }
  }
  r.total = summarise(total);
  r.queue_wait = summarise(queue_wait);
  r.upstream = summarise(upstream);
  return r;
}

std::optional<RequestProfile> Profiler::find(std::string_view request_id) const {
  std::lock_guard lock(mu_);
  // Newest first: the slot before next_ going backwards.
  for (std::size_t k = 0; k < ring_.size(); ++k) {
    const std::size_t i = (next_ + ring_.size() - 1 - k) % ring_.size();
    if (ring_[i].request_id == request_id) return ring_[i];
  }
  return std::nullopt;
}

}  // namespace glmproxy::detail

namespace glmproxy {

std::string RequestProfile::to_json() const try {
  const auto& m = at_us;
  const auto started_ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(started_at.time_since_epoch()).count();
  return fmt::format(
      R"({{"request_id":{},"api":{},"model":{},"stream":{},"outcome":{},"error_code":{},)"
      R"("http_status":{},"attempts":{},"connection_reused":{},"bytes_sent":{},)"
      R"("bytes_received":{},"started_at":{},"at_us":{{"cache":{},"queued":{},"admitted":{},)"
      R"("dns":{},"connect":{},"tls":{},"request_sent":{},"first_byte":{},"first_token":{},)"
      R"("done":{}}}}})",
      detail::json_string(request_id), detail::json_string(api), detail::json_string(model), stream,
      detail::json_string(outcome), detail::json_string(error_code), http_status, attempts,
      connection_reused, bytes_sent, bytes_received, started_ms, m.cache, m.queued, m.admitted,
      m.dns, m.connect, m.tls, m.request_sent, m.first_byte, m.first_token, m.done);
} catch (...) {
  // Nothing leaves the library as an exception.
  return std::string();
}

std::string ProfilingReport::to_json() const try {
  std::string out = fmt::format(
      R"({{"enabled":{},"capacity":{},"kept":{},"recorded":{},"total":{},"queue_wait":{},)"
      R"("upstream":{},"slowest":[)",
      enabled, capacity, kept, recorded, detail::summary_json(total),
      detail::summary_json(queue_wait), detail::summary_json(upstream));
  for (std::size_t i = 0; i < slowest.size(); ++i) {
    if (i > 0) out += ',';
    out += slowest[i].to_json();
  }
  out += "]}";
  return out;
} catch (...) {
  // Nothing leaves the library as an exception.
  return std::string();
}

}  // namespace glmproxy
