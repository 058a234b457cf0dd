#include "load/report.hpp"

#include <fmt/format.h>

#include <cmath>

#include "glmproxy/version.hpp"
#include "load/json.hpp"
#include "load/targets.hpp"

namespace glmproxy::bench {

namespace {

double us(double ns) { return ns / 1000.0; }
double p_us(const Histogram& h, double q) { return us(h.quantile_ns(q)); }
double rps(const RunResult& r) {
  return r.seconds > 0 ? static_cast<double>(r.requests) / r.seconds : 0.0;
}
std::optional<double> calls_per_request(const RunResult& r) {
  const auto calls = r.upstream_calls ? r.upstream_calls : r.client_upstream;
  if (!calls || r.requests == 0) return std::nullopt;
  return static_cast<double>(*calls) / static_cast<double>(r.requests);
}

void write_latency(Json& j, const Histogram& h) {
  j.open('{');
  j.key("p50").num(p_us(h, 0.50));
  j.key("p90").num(p_us(h, 0.90));
  j.key("p99").num(p_us(h, 0.99));
  j.key("p999").num(p_us(h, 0.999));
  j.key("mean").num(us(h.mean_ns()));
  j.key("max").num(us(static_cast<double>(h.max_ns())));
  j.key("samples").num(h.count());
  j.close('}');
}

void write_run(Json& j, const RunResult& r, int id, int baseline, const RunResult* base) {
  j.open('{');
  j.key("id").num(id);
  j.key("workload").str(r.workload);
  j.key("mode").str(r.mode);
  j.key("client").str(r.client);
  j.key("api").str(r.api);
  j.key("driver");
  if (r.driver.empty())
    j.null();
  else
    j.str(r.driver);
  j.key("pinning").str(r.pinning);
  j.key("loadavg_start").str(r.loadavg);
  j.key("concurrency");
  if (r.mode == "closed")
    j.num(r.concurrency);
  else
    j.null();
  j.key("rate");
  if (r.mode == "open")
    j.num(r.rate);
  else
    j.null();
  j.key("requests").num(r.requests);
  j.key("errors").num(r.errors);
  j.key("first_error").str(r.first_error);
  j.key("seconds").num(r.seconds);
  j.key("requests_per_second").num(rps(r));
  j.key("latency_us");
  write_latency(j, r.latency);
  j.key("ttft_us");
  if (r.has_ttft)
    write_latency(j, r.ttft);
  else
    j.null();
  j.key("connections_opened").opt(r.connections_opened);
  j.key("connections_opened_with_warmup").opt(r.connections_step);
  j.key("upstream_calls").opt(r.upstream_calls);
  j.key("client_upstream_requests").opt(r.client_upstream);
  j.key("upstream_calls_per_request").opt(calls_per_request(r));
  j.key("cpu_seconds").num(r.cpu_seconds);
  j.key("cpu_us_per_request")
      .num(r.requests == 0 ? 0.0 : r.cpu_seconds * 1e6 / static_cast<double>(r.requests));
  j.key("peak_rss_kib").num(static_cast<std::int64_t>(r.peak_rss_kib));
  j.key("rss_bytes").num(r.rss_bytes);
  j.key("extra").open('{');
  for (const auto& [name, value] : r.extra) j.key(name).num(value);
  j.close('}');
  j.key("baseline_id");
  if (base == nullptr) {
    j.null();
    j.key("vs_baseline").null();
  } else {
    j.num(baseline);
    j.key("vs_baseline").open('{');
    j.key("client").str(base->client);
    j.key("rps_ratio").num(rps(r) / rps(*base));
    j.key("p50_ratio").num(r.latency.quantile_ns(0.5) / base->latency.quantile_ns(0.5));
    j.key("p99_ratio").num(r.latency.quantile_ns(0.99) / base->latency.quantile_ns(0.99));
    j.key("added_p50_us").num(p_us(r.latency, 0.5) - p_us(base->latency, 0.5));
    j.key("added_p99_us").num(p_us(r.latency, 0.99) - p_us(base->latency, 0.99));
    if (r.has_ttft && base->has_ttft) {
      j.key("ttft_p50_ratio").num(r.ttft.quantile_ns(0.5) / base->ttft.quantile_ns(0.5));
      j.key("added_ttft_p50_us").num(p_us(r.ttft, 0.5) - p_us(base->ttft, 0.5));
      j.key("added_ttft_p99_us").num(p_us(r.ttft, 0.99) - p_us(base->ttft, 0.99));
    }
    j.close('}');
  }
  j.close('}');
}

std::string opt_num(const std::optional<double>& v, const char* format) {
  return v ? fmt::format(fmt::runtime(format), *v) : "-";
}

// The 1-minute figure of a /proc/loadavg "1 5 15" string.
std::string load1(const std::string& loadavg) { return loadavg.substr(0, loadavg.find(' ')); }

void write_targets(Json& j, const std::vector<Target>& targets) {
  j.open('[');
  for (const Target& t : targets) {
    j.open('{');
    j.key("id").str(t.id);
    j.key("name").str(t.name);
    j.key("goal").str(t.goal);
    j.key("unit").str(t.unit);
    j.key("threshold").num(t.threshold);
    j.key("compare").str(t.at_most ? "at_most" : "at_least");
    j.key("results").open('{');
    for (const TargetResult& r : t.results) {
      j.key(r.pinning);
      if (!r.measured_in_run()) {
        j.null();
        continue;
      }
      j.open('{');
      j.key("run_id").num(r.run_id);
      j.key("baseline_id").num(r.baseline_id);
      j.key("glmproxy").num(r.glmproxy);
      j.key("baseline").num(r.baseline);
      j.key("measured").num(r.measured);
      j.key("met").boolean(r.met);
      j.key("missed_by").num(r.missed_by);
      j.key("errors").num(r.errors);
      j.key("status").str(describe(t, r));
      j.close('}');
    }
    j.close('}');
    j.close('}');
  }
  j.close(']');
}

}  // namespace

std::vector<int> match_baselines(const std::vector<RunResult>& runs) {
  std::vector<int> out(runs.size(), -1);
  for (std::size_t i = 0; i < runs.size(); ++i) {
    const RunResult& g = runs[i];
    if (g.client != "glmproxy") continue;
    for (std::size_t k = 0; k < runs.size(); ++k) {
      const RunResult& b = runs[k];
      if (b.client == "glmproxy" || b.workload != g.workload || b.mode != g.mode ||
          b.pinning != g.pinning) {
        continue;
      }
      if (g.mode == "closed" ? b.concurrency == g.concurrency : b.rate == g.rate) {
        out[i] = static_cast<int>(k);
        break;
      }
    }
  }
  return out;
}

void print_tables(std::FILE* out, const Report& report) {
  const std::vector<int> baselines = match_baselines(report.runs);
  fmt::print(out, "load average (1, 5, 15 min): {} at the start, {} at the end; steps run {}\n",
             report.loadavg_start, report.loadavg_end,
             report.pinnings.size() > 1 ? "pinned, then unpinned" : report.pinnings.front());
  std::string last;
  for (std::size_t i = 0; i < report.runs.size(); ++i) {
    const RunResult& r = report.runs[i];
    const std::string section = r.workload + " / " + r.mode;
    if (section != last) {
      last = section;
      fmt::print(out, "\n== {} ({})\n", r.workload,
                 r.mode == "closed" ? "closed loop" : "open loop, latency from intended send");
      fmt::print(out,
                 "{:<11} {:<47} {:<8} {:>6} {:>9} {:>8} {:>8} {:>8} {:>8} {:>9} {:>6} {:>6} {:>8} "
                 "{:>8} {:>7} {:>7} {:>7} {:>5} {:>5}\n",
                 "client", "api", "pinning", r.mode == "closed" ? "conc" : "rate", "req/s",
                 "p50 µs", "p90 µs", "p99 µs", "p99.9 µs", "TTFT p50", "rps×", "p50×", "+p50 µs",
                 "+p99 µs", "conns", "up/req", "CPU µs", "err", "load");
    }
    const RunResult* base =
        baselines[i] >= 0 ? &report.runs[static_cast<std::size_t>(baselines[i])] : nullptr;
    std::string ratio_rps = "-", ratio_p50 = "-", add50 = "-", add99 = "-";
    if (base != nullptr) {
      ratio_rps = fmt::format("{:.2f}", rps(r) / rps(*base));
      ratio_p50 =
          fmt::format("{:.2f}", r.latency.quantile_ns(0.5) / base->latency.quantile_ns(0.5));
      add50 = fmt::format("{:+.1f}", p_us(r.latency, 0.5) - p_us(base->latency, 0.5));
      add99 = fmt::format("{:+.1f}", p_us(r.latency, 0.99) - p_us(base->latency, 0.99));
    }
    std::string ttft = "-";
    if (r.has_ttft) {
      ttft = fmt::format("{:.1f}", p_us(r.ttft, 0.5));
      if (base != nullptr && base->has_ttft) {
        ttft += fmt::format(" ({:.2f}×)", r.ttft.quantile_ns(0.5) / base->ttft.quantile_ns(0.5));
      }
    }
    const std::string conc =
        r.mode == "closed" ? std::to_string(r.concurrency) : fmt::format("{:.0f}", r.rate);
    // New connections in the measured phase / in the whole step (warm-up included).
    std::string conns = "-";
    if (r.connections_opened && r.connections_step) {
      conns = fmt::format("{}/{}", *r.connections_opened, *r.connections_step);
    }
    fmt::print(out,
               "{:<11} {:<47} {:<8} {:>6} {:>9.0f} {:>8.1f} {:>8.1f} {:>8.1f} {:>8.1f} {:>9} {:>6} "
               "{:>6} {:>8} {:>8} {:>7} {:>7} {:>7.1f} {:>5} {:>5}\n",
               r.client, r.api.substr(0, 47), r.pinning, conc, rps(r), p_us(r.latency, 0.5),
               p_us(r.latency, 0.9), p_us(r.latency, 0.99), p_us(r.latency, 0.999), ttft, ratio_rps,
               ratio_p50, add50, add99, conns, opt_num(calls_per_request(r), "{:.3f}"),
               r.requests == 0 ? 0.0 : r.cpu_seconds * 1e6 / static_cast<double>(r.requests),
               r.errors, load1(r.loadavg));
    if (r.errors != 0) fmt::print(out, "            first error: {}\n", r.first_error);
  }
  if (report.idle) {
    const IdleRss& idle = *report.idle;
    fmt::print(out,
               "\n== idle default client: RSS +{:.2f} MiB after create + {:.1f} s idle "
               "(a second client: +{:.2f} MiB; curl_global_init before it: +{:.2f} MiB)\n",
               static_cast<double>(idle.delta()) / 1048576.0, idle.idle_seconds,
               static_cast<double>(idle.after_second - idle.after_idle) / 1048576.0,
               static_cast<double>(idle.curl_global_init) / 1048576.0);
  }
  if (report.soak) {
    const SoakResult& s = *report.soak;
    fmt::print(out,
               "\n== soak: {} requests in {:.1f} s ({} hits, {} misses, {} upstream calls, "
               "{} errors{})\n",
               s.requests, s.seconds, s.hits, s.misses, s.upstream_calls, s.errors,
               s.stopped_early ? ", stopped early at the time limit" : "");
    for (const auto& [done, rss] : s.samples) {
      fmt::print(out, "   {:>9} requests: RSS {:.2f} MiB\n", done,
                 static_cast<double>(rss) / 1048576.0);
    }
    fmt::print(out, "   growth after warm-up: {:+.3f} MiB (largest {:+.3f} MiB)\n",
               static_cast<double>(s.growth_after_warm) / 1048576.0,
               static_cast<double>(s.max_growth_after_warm) / 1048576.0);
  }
  print_targets(out, evaluate_targets(report.runs, baselines, report.pinnings), report.pinnings);
}

std::string to_json(const Report& report) {
  Json j;
  j.open('{');
  j.key("schema").str("glmproxy-bench/2");
  j.key("glmproxy_version").str(GLMPROXY_VERSION_STRING);
  j.key("started_at").str(report.started_at);
  j.key("wall_seconds").num(report.wall_seconds);
  j.key("command").open('[');
  for (const auto& a : report.command) j.str(a);
  j.close(']');
  j.key("machine").open('{');
  j.key("nproc").num(report.nproc);
  j.key("cpu_model").str(report.cpu_model);
  j.key("kernel").str(report.kernel);
  j.key("loadavg_start").str(report.loadavg_start);
  j.key("loadavg_end").str(report.loadavg_end);
  j.close('}');
  j.key("upstream").open('{');
  j.key("kind").str(report.upstream_kind);
  j.key("base_url").str(report.base_url);
  j.key("mock_binary").str(report.mock_binary);
  j.key("pinned").boolean(report.pinned);
  j.key("bench_cpu").num(report.bench_cpu);
  j.key("mock_cpu").num(report.mock_cpu);
  j.key("stats_available").boolean(report.stats_available);
  j.close('}');
  j.key("settings").open('{');
  j.key("quick").boolean(report.quick);
  j.key("duration_seconds").num(report.limits.seconds);
  j.key("max_requests").num(report.limits.requests);
  j.key("warmup_seconds").num(report.warmup.seconds);
  j.key("warmup_requests").num(report.warmup.requests);
  j.key("concurrency").open('[');
  for (int c : report.concurrency) j.num(c);
  j.close(']');
  j.key("rate").num(report.rate);
  j.key("workloads").open('[');
  for (const auto& w : report.workloads) j.str(w);
  j.close(']');
  j.key("pinning").open('[');
  for (const auto& p : report.pinnings) j.str(p);
  j.close(']');
  j.close('}');
  j.key("idle_rss");
  if (report.idle) {
    const IdleRss& i = *report.idle;
    j.open('{');
    j.key("idle_seconds").num(i.idle_seconds);
    j.key("before_bytes").num(i.before);
    j.key("after_create_bytes").num(i.after_create);
    j.key("after_idle_bytes").num(i.after_idle);
    j.key("delta_bytes").num(i.delta());
    j.key("second_client_delta_bytes").num(i.after_second - i.after_idle);
    j.key("after_destroy_bytes").num(i.after_destroy);
    j.key("curl_global_init_bytes").num(i.curl_global_init);
    j.close('}');
  } else {
    j.null();
  }
  const std::vector<int> baselines = match_baselines(report.runs);
  j.key("targets");
  write_targets(j, evaluate_targets(report.runs, baselines, report.pinnings));
  j.key("runs").open('[');
  for (std::size_t i = 0; i < report.runs.size(); ++i) {
    const int b = baselines[i];
    write_run(j, report.runs[i], static_cast<int>(i), b,
              b >= 0 ? &report.runs[static_cast<std::size_t>(b)] : nullptr);
  }
  j.close(']');
  j.key("soak");
  if (report.soak) {
    const SoakResult& s = *report.soak;
    j.open('{');
    j.key("requests").num(s.requests);
    j.key("requested").num(s.options.requests);
    j.key("seconds").num(s.seconds);
    j.key("stopped_early").boolean(s.stopped_early);
    j.key("hits").num(s.hits);
    j.key("misses").num(s.misses);
    j.key("errors").num(s.errors);
    j.key("first_error").str(s.first_error);
    j.key("upstream_calls").num(s.upstream_calls);
    j.key("evictions").num(s.evictions);
    j.key("miss_every").num(s.options.miss_every);
    j.key("hot_prompts").num(static_cast<std::uint64_t>(s.options.hot_prompts));
    j.key("cache_max_entries").num(static_cast<std::uint64_t>(s.options.cache_max_entries));
    j.key("sample_every").num(s.options.sample_every);
    j.key("rss_start_bytes").num(s.rss_start);
    j.key("rss_after_create_bytes").num(s.rss_after_create);
    j.key("rss_warm_bytes").num(s.rss_warm);
    j.key("rss_end_bytes").num(s.rss_end);
    j.key("growth_after_warm_bytes").num(s.growth_after_warm);
    j.key("max_growth_after_warm_bytes").num(s.max_growth_after_warm);
    j.key("samples").open('[');
    for (const auto& [done, rss] : s.samples) {
      j.open('{').key("requests").num(done).key("rss_bytes").num(rss).close('}');
    }
    j.close(']');
    j.close('}');
  } else {
    j.null();
  }
  j.close('}');
  std::string out = j.take();
  out += '\n';
  return out;
}

}  // namespace glmproxy::bench
