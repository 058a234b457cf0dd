#include "load/targets.hpp"

#include <fmt/format.h>

namespace glmproxy::bench {

namespace {

enum class Figure { AddedP50Us, TtftP50Ratio, RpsRatio };

struct Definition {
  const char* id;
  const char* name;
  const char* goal;
  const char* workload;
  int concurrency;
  const char* driver;  // RunResult::driver of the glmproxy step
  Figure figure;
  double threshold;
  bool at_most;
};

constexpr Definition kTargets[] = {
    {"sequential_complete_p50", "sequential complete() p50", "≤ raw libcurl + 10 µs", "chat", 1,
     "threads", Figure::AddedP50Us, 10.0, true},
    {"stream_ttft_p50", "stream() time to first token p50", "≤ 1.05× raw libcurl", "stream", 1,
     "threads", Figure::TtftP50Ratio, 1.05, true},
    {"feeder_c32_throughput", "complete_async() fed by one thread, 32 out: req/s",
     "≥ 0.9× curl-multi", "chat", 32, "feeder", Figure::RpsRatio, 0.9, false},
    {"threads_complete_c32_throughput", "32 threads calling complete(): req/s", "≥ 0.9× curl-multi",
     "chat", 32, "threads", Figure::RpsRatio, 0.9, false},
    {"threads_stream_c32_throughput", "32 threads calling stream(): req/s", "≥ 0.9× curl-multi",
     "stream", 32, "threads", Figure::RpsRatio, 0.9, false},
};

double rps(const RunResult& r) {
  return r.seconds > 0 ? static_cast<double>(r.requests) / r.seconds : 0.0;
}

TargetResult measure(const Definition& d, const std::vector<RunResult>& runs,
                     const std::vector<int>& baselines, const std::string& pinning) {
  TargetResult t;
  t.pinning = pinning;
  for (std::size_t i = 0; i < runs.size(); ++i) {
    const RunResult& r = runs[i];
    if (r.client != "glmproxy" || r.mode != "closed" || r.workload != d.workload ||
        r.concurrency != d.concurrency || r.driver != d.driver || r.pinning != pinning ||
        baselines[i] < 0) {
      continue;
    }
    const RunResult& b = runs[static_cast<std::size_t>(baselines[i])];
    t.run_id = static_cast<int>(i);
    t.baseline_id = baselines[i];
    t.errors = r.errors + b.errors;
    switch (d.figure) {
      case Figure::AddedP50Us:
        t.glmproxy = r.latency.quantile_ns(0.5) / 1000.0;
        t.baseline = b.latency.quantile_ns(0.5) / 1000.0;
        t.measured = t.glmproxy - t.baseline;
        break;
      case Figure::TtftP50Ratio:
        t.glmproxy = r.ttft.quantile_ns(0.5) / 1000.0;
        t.baseline = b.ttft.quantile_ns(0.5) / 1000.0;
        t.measured = t.baseline > 0 ? t.glmproxy / t.baseline : 0.0;
        break;
      case Figure::RpsRatio:
        t.glmproxy = rps(r);
        t.baseline = rps(b);
        t.measured = t.baseline > 0 ? t.glmproxy / t.baseline : 0.0;
        break;
    }
    t.met = d.at_most ? t.measured <= d.threshold : t.measured >= d.threshold;
    t.missed_by = t.met ? 0.0 : (d.at_most ? t.measured - d.threshold : d.threshold - t.measured);
    break;
  }
  return t;
}

}  // namespace

std::vector<Target> evaluate_targets(const std::vector<RunResult>& runs,
                                     const std::vector<int>& baselines,
                                     const std::vector<std::string>& pinnings) {
  std::vector<Target> out;
  for (const Definition& d : kTargets) {
    Target t;
    t.id = d.id;
    t.name = d.name;
    t.goal = d.goal;
    t.unit = d.figure == Figure::AddedP50Us ? "us" : "x";
    t.threshold = d.threshold;
    t.at_most = d.at_most;
    for (const auto& p : pinnings) t.results.push_back(measure(d, runs, baselines, p));
    out.push_back(std::move(t));
  }
  return out;
}

std::string describe(const Target& target, const TargetResult& r) {
  if (!r.measured_in_run()) return "not measured";
  const bool us = target.unit == "us";
  std::string s = us ? fmt::format("{:+.1f} µs", r.measured) : fmt::format("{:.2f}×", r.measured);
  s += r.met ? " met"
             : (us ? fmt::format(" missed by {:.1f} µs", r.missed_by)
                   : fmt::format(" missed by {:.2f}×", r.missed_by));
  if (r.errors != 0) s += fmt::format(" ({} errors)", r.errors);
  return s;
}

void print_targets(std::FILE* out, const std::vector<Target>& targets,
                   const std::vector<std::string>& pinnings) {
  fmt::print(out, "\n== targets: glmproxy against raw libcurl, same server, same run\n");
  // fmt pads by display width, so "≤", "×" and "µ" line up.
  std::string head = fmt::format("{:<52} {:<22}", "target", "goal");
  for (const auto& p : pinnings) head += fmt::format(" {:<30}", p);
  fmt::print(out, "{}\n", head.substr(0, head.find_last_not_of(' ') + 1));
  bool unmeasured = false;
  for (const Target& t : targets) {
    std::string line = fmt::format("{:<52} {:<22}", t.name, t.goal);
    for (const TargetResult& r : t.results) {
      line += fmt::format(" {:<30}", describe(t, r));
      unmeasured = unmeasured || !r.measured_in_run();
    }
    fmt::print(out, "{}\n", line.substr(0, line.find_last_not_of(' ') + 1));
  }
  if (unmeasured) {
    fmt::print(out,
               "(not measured: the run had no such step; sequential and first-token targets "
               "need concurrency 1, the others 32 with the feeder and threads drivers)\n");
  }
}

}  // namespace glmproxy::bench
