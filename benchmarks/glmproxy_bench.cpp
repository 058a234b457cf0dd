// glmproxy-bench: load benchmark of ProxyClient against raw libcurl baselines, in the same run
// against the same upstream (the bundled mock by default). See docs/benchmarking.md.
//
//   glmproxy-bench                       closed loop at 1,8,32,128 for every workload
//   glmproxy-bench --rate 5000           ... and an open loop at 5000 requests/s
//   glmproxy-bench --soak                ... and a 1,000,000-request memory soak
//   glmproxy-bench --pinning both        every step pinned (mock and tool on a core each), then
//                                        unpinned; the targets table gives both
//   glmproxy-bench --quick               every workload and baseline in well under a minute
//   glmproxy-bench --url http://host:port/api/paas/v4 --workload chat --concurrency 1,8

#include <curl/curl.h>
#include <signal.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <fstream>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "load/client_runs.hpp"
#include "load/curl_runs.hpp"
#include "load/memory_runs.hpp"
#include "load/report.hpp"
#include "load/upstream.hpp"

namespace {

using namespace glmproxy::bench;

struct Options {
  UpstreamOptions upstream;
  std::vector<Workload> workloads{std::begin(kAllWorkloads), std::end(kAllWorkloads)};
  std::vector<int> concurrency;
  std::optional<double> duration;
  std::optional<std::uint64_t> requests;
  std::optional<double> warmup;
  std::optional<double> rate;
  bool drive_async = true, drive_feeder = true, drive_threads = true;
  // Pinned and/or unpinned steps, in this order (--pinning); the default is today's: pinned
  // when the mock is a process and there are two CPUs.
  bool run_pinned = true, run_unpinned = false;
  std::optional<std::uint64_t> soak;  // requests; set by --soak
  std::optional<std::uint64_t> soak_miss_every;
  std::optional<double> idle_seconds;
  std::string output;
  bool quick = false;
  double timeout = 0;
  std::size_t open_workers = 128;
};

constexpr const char* kUsage = R"(usage: glmproxy-bench [options]

upstream (default: --mock process)
  --url URL               an OpenAI-compatible base URL, e.g. http://127.0.0.1:8080/api/paas/v4
  --mock process          spawn glmproxy-mock-upstream (next to this tool, or --mock-binary);
                          with 2+ CPUs it runs on the second, this tool on the first
  --mock inprocess        run the mock on a thread of this process (no pinning)
  --mock-binary PATH      the glmproxy-mock-upstream executable
  --pinning MODE          pinned (default), unpinned, or both: every step (baseline and
                          glmproxy) runs pinned, then unpinned. Pinned: the mock on the
                          second CPU, this tool on the first (needs --mock process, 2+ CPUs)
  --no-pin                the same as --pinning unpinned

what to run
  --workload LIST         chat,stream,cache,coalesce,embed (default all; "none" for none)
  --concurrency LIST      closed-loop sweep (default 1,8,32,128; quick 1,8; "none" for none)
  --rate N                also an open loop at N requests/s (quick: 500)
  --driver LIST           chat above concurrency 1: async (next sent from the callback),
                          feeder (one thread keeping N out), threads (N threads calling
                          complete()); default async,feeder,threads
  --soak [N]              then N requests through cache hits and misses (default 1000000)
  --soak-miss-every K     one new prompt (a miss) every K soak requests (default 4)
  --idle-seconds S        idle RSS of a default client: how long it sits (default 1; 0 skips)

bounds (each step stops at whichever comes first)
  --duration SECONDS      per step (default 3; quick 0.5)
  --requests N            per step (default unbounded; quick 2000)
  --warmup SECONDS        before each step, not measured (default 0.3; quick 0.1)
  --open-workers N        open loop, stream/embed: threads making blocking calls (default 128)
  --timeout SECONDS       kill everything and exit 3 after this long (default: from the plan)

output
  --output FILE           the JSON report (quick default: glmproxy-bench-quick.json)
  --quick                 every workload with its baseline, small bounds, JSON written
)";

[[noreturn]] void usage_error(const std::string& message) {
  std::fprintf(stderr, "glmproxy-bench: %s\n\n%s", message.c_str(), kUsage);
  std::exit(2);
}

std::vector<std::string> split(const std::string& list) {
  std::vector<std::string> out;
  std::stringstream in(list);
  for (std::string item; std::getline(in, item, ',');) {
    if (!item.empty()) out.push_back(item);
  }
  return out;
}

template <class T>
T number(const std::string& flag, const char* text, T lo, T hi) {
  char* end = nullptr;
  errno = 0;
  const double v = std::strtod(text, &end);
  if (errno != 0 || end == text || *end != '\0' || v < static_cast<double>(lo) ||
      v > static_cast<double>(hi)) {
    usage_error(flag + " wants a number in [" + std::to_string(lo) + ", " + std::to_string(hi) +
                "], got \"" + text + "\"");
  }
  return static_cast<T>(v);
}

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    auto value = [&]() -> const char* {
      if (i + 1 >= argc) usage_error(arg + " needs a value");
      return argv[++i];
    };
    if (arg == "--url") {
      o.upstream.kind = UpstreamKind::Url;
      o.upstream.url = value();
    } else if (arg == "--mock") {
      const std::string v = value();
      if (v == "process") {
        o.upstream.kind = UpstreamKind::Process;
      } else if (v == "inprocess") {
        o.upstream.kind = UpstreamKind::InProcess;
      } else {
        usage_error("--mock wants process or inprocess, got \"" + v + "\"");
      }
    } else if (arg == "--mock-binary") {
      o.upstream.mock_binary = value();
    } else if (arg == "--no-pin") {
      o.run_pinned = false;
      o.run_unpinned = true;
    } else if (arg == "--pinning") {
      const std::string v = value();
      o.run_pinned = v == "pinned" || v == "both";
      o.run_unpinned = v == "unpinned" || v == "both";
      if (!o.run_pinned && !o.run_unpinned) {
        usage_error("--pinning wants pinned, unpinned or both, got \"" + v + "\"");
      }
    } else if (arg == "--workload") {
      o.workloads.clear();
      for (const auto& name : split(value())) {
        if (name == "none") continue;
        bool known = false;
        for (Workload w : kAllWorkloads) {
          if (to_string(w) == name) {
            o.workloads.push_back(w);
            known = true;
          }
        }
        if (!known) usage_error("unknown workload \"" + name + "\"");
      }
    } else if (arg == "--concurrency") {
      o.concurrency.clear();
      const std::string v = value();
      if (v == "none") {
        o.concurrency.push_back(0);  // marker: no closed loop
      } else {
        for (const auto& c : split(v)) o.concurrency.push_back(number(arg, c.c_str(), 1, 4096));
      }
      if (o.concurrency.empty()) usage_error("--concurrency wants a list such as 1,8,32");
    } else if (arg == "--rate") {
      o.rate = number(arg, value(), 1.0, 1e6);
    } else if (arg == "--driver") {
      o.drive_async = o.drive_feeder = o.drive_threads = false;
      for (const auto& d : split(value())) {
        if (d == "async") {
          o.drive_async = true;
        } else if (d == "feeder") {
          o.drive_feeder = true;
        } else if (d == "threads") {
          o.drive_threads = true;
        } else {
          usage_error("--driver wants async, feeder and/or threads, got \"" + d + "\"");
        }
      }
    } else if (arg == "--soak") {
      o.soak = 1'000'000;
      if (i + 1 < argc && argv[i + 1][0] >= '0' && argv[i + 1][0] <= '9') {
        o.soak = number<std::uint64_t>(arg, argv[++i], 1, 1'000'000'000);
      }
    } else if (arg == "--soak-miss-every") {
      o.soak_miss_every = number<std::uint64_t>(arg, value(), 1, 1'000'000);
    } else if (arg == "--idle-seconds") {
      o.idle_seconds = number(arg, value(), 0.0, 3600.0);
    } else if (arg == "--duration") {
      o.duration = number(arg, value(), 0.01, 86400.0);
    } else if (arg == "--requests") {
      o.requests = number<std::uint64_t>(arg, value(), 1, 1'000'000'000'000);
    } else if (arg == "--warmup") {
      o.warmup = number(arg, value(), 0.0, 3600.0);
    } else if (arg == "--open-workers") {
      o.open_workers = number<std::size_t>(arg, value(), 1, 4096);
    } else if (arg == "--timeout") {
      o.timeout = number(arg, value(), 1.0, 1e6);
    } else if (arg == "--output") {
      o.output = value();
    } else if (arg == "--quick") {
      o.quick = true;
    } else if (arg == "--help" || arg == "-h") {
      std::fputs(kUsage, stdout);
      std::exit(0);
    } else {
      usage_error("unknown argument \"" + arg + "\"");
    }
  }
  return o;
}

// One step of the plan.
enum class Kind {
  CurlEasy,
  CurlMulti,
  CurlOpen,
  ClientBlocking,
  ClientAsync,
  ClientFeeder,
  ClientOpen
};
struct Step {
  Workload workload;
  Kind kind;
  int concurrency = 0;
  double rate = 0;
  bool pinned = false;
};

// Each baseline is followed by the glmproxy steps compared with it, under the same pinning;
// with both pinnings the group runs pinned, then unpinned, so the two see the machine alike.
std::vector<Step> plan(const Options& o, const std::vector<int>& sweep, double rate,
                       const std::vector<bool>& pinnings) {
  std::vector<Step> steps;
  for (Workload w : o.workloads) {
    for (int c : sweep) {
      if (c == 0) continue;
      for (const bool pinned : pinnings) {
        if (c == 1) {
          steps.push_back({w, Kind::CurlEasy, 1, 0, pinned});
          steps.push_back({w, w == Workload::Coalesce ? Kind::ClientAsync : Kind::ClientBlocking, 1,
                           0, pinned});
          continue;
        }
        steps.push_back({w, Kind::CurlMulti, c, 0, pinned});
        if (w == Workload::Chat) {
          if (o.drive_async) steps.push_back({w, Kind::ClientAsync, c, 0, pinned});
          if (o.drive_feeder) steps.push_back({w, Kind::ClientFeeder, c, 0, pinned});
          if (o.drive_threads) steps.push_back({w, Kind::ClientBlocking, c, 0, pinned});
        } else {
          steps.push_back({w, w == Workload::Coalesce ? Kind::ClientAsync : Kind::ClientBlocking, c,
                           0, pinned});
        }
      }
    }
    // Identical requests arriving at a steady rate are not a burst: no open loop for coalesce.
    if (rate > 0 && w != Workload::Coalesce) {
      for (const bool pinned : pinnings) {
        steps.push_back({w, Kind::CurlOpen, 0, rate, pinned});
        steps.push_back({w, Kind::ClientOpen, 0, rate, pinned});
      }
    }
  }
  return steps;
}

RunResult run_step(const Context& ctx, const Step& s) {
  switch (s.kind) {
    case Kind::CurlEasy:
      return run_curl_easy(ctx, s.workload);
    case Kind::CurlMulti:
      return run_curl_multi(ctx, s.workload, s.concurrency);
    case Kind::CurlOpen:
      return run_curl_open(ctx, s.workload, s.rate);
    case Kind::ClientBlocking:
      return run_client_closed(ctx, s.workload, s.concurrency, Driver::Blocking);
    case Kind::ClientAsync:
      return run_client_closed(ctx, s.workload, s.concurrency, Driver::Async);
    case Kind::ClientFeeder:
      return run_client_closed(ctx, s.workload, s.concurrency, Driver::Feeder);
    case Kind::ClientOpen:
      return run_client_open(ctx, s.workload, s.rate);
  }
  return {};
}

std::string step_name(const Step& s) {
  static const char* const kNames[] = {"curl-easy",         "curl-multi",     "curl-multi open",
                                       "glmproxy blocking", "glmproxy async", "glmproxy feeder",
                                       "glmproxy open"};
  std::string name = std::string(to_string(s.workload)) + " " + kNames[static_cast<int>(s.kind)];
  name += s.rate > 0 ? " rate=" + std::to_string(static_cast<long>(s.rate))
                     : " c=" + std::to_string(s.concurrency);
  return name + (s.pinned ? " (pinned)" : " (unpinned)");
}

// Kills the mock and exits if the run takes longer than it possibly should.
class Watchdog {
 public:
  explicit Watchdog(double seconds) : thread_([this, seconds] { watch(seconds); }) {}
  ~Watchdog() {
    {
      std::lock_guard lock(mu_);
      done_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }
  Watchdog(const Watchdog&) = delete;
  Watchdog& operator=(const Watchdog&) = delete;

 private:
  void watch(double seconds) {
    std::unique_lock lock(mu_);
    if (cv_.wait_for(lock, std::chrono::duration<double>(seconds), [this] { return done_; })) {
      return;
    }
    std::fprintf(stderr, "glmproxy-bench: still running after %.0f s (--timeout); giving up\n",
                 seconds);
    kill_mock_process_now();
    std::_Exit(3);
  }

  std::mutex mu_;
  std::condition_variable cv_;
  bool done_ = false;
  std::thread thread_;
};

extern "C" void on_signal(int sig) {
  kill_mock_process_now();
  _exit(128 + sig);
}

std::string cpu_model() {
  std::ifstream in("/proc/cpuinfo");
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("model name", 0) == 0) {
      const auto colon = line.find(':');
      if (colon != std::string::npos) {
        std::string v = line.substr(colon + 1);
        v.erase(0, v.find_first_not_of(" \t"));
        return v;
      }
    }
  }
  return "unknown";
}

// The 1, 5 and 15 minute load averages, as /proc/loadavg gives them.
std::string loadavg() {
  std::ifstream in("/proc/loadavg");
  std::string a, b, c;
  in >> a >> b >> c;
  return a + " " + b + " " + c;
}

std::string utc_now() {
  const std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

}  // namespace

int main(int argc, char** argv) {
  const Options o = parse(argc, argv);
  const auto wall_start = Clock::now();

  struct sigaction sa {};
  sa.sa_handler = &on_signal;
  sigemptyset(&sa.sa_mask);
  for (int sig : {SIGINT, SIGTERM, SIGHUP}) sigaction(sig, &sa, nullptr);
  signal(SIGPIPE, SIG_IGN);

  // libcurl's one-time set-up (OpenSSL included) first, so the idle-client figure is the
  // client's own; what it costs is reported beside it.
  const std::int64_t rss_before_curl = rss_bytes();
  curl_global_init(CURL_GLOBAL_DEFAULT);
  const std::int64_t curl_init_bytes = rss_bytes() - rss_before_curl;

  Context ctx;
  ctx.limits.seconds = o.duration.value_or(o.quick ? 0.5 : 3.0);
  ctx.limits.requests = o.requests.value_or(o.quick ? 2000 : 0);
  ctx.warmup.seconds = o.warmup.value_or(o.quick ? 0.1 : 0.3);
  ctx.warmup.requests = o.quick ? 20 : 200;
  ctx.drain_seconds = o.quick ? 5 : 10;
  ctx.open_workers = o.open_workers;
  const std::vector<int> sweep =
      !o.concurrency.empty() ? o.concurrency
                             : (o.quick ? std::vector<int>{1, 8} : std::vector<int>{1, 8, 32, 128});
  const double rate = o.rate.value_or(o.quick ? 500.0 : 0.0);
  std::optional<std::uint64_t> soak = o.soak;
  if (o.quick && !soak) soak = 5000;
  const double idle_seconds = o.idle_seconds.value_or(o.quick ? 0.2 : 1.0);
  const std::string output =
      !o.output.empty() ? o.output : (o.quick ? "glmproxy-bench-quick.json" : "");

  std::string error;
  UpstreamOptions upstream_options = o.upstream;
  upstream_options.pin = o.run_pinned;
  auto upstream = Upstream::start(upstream_options, &error);  // forks: before any other thread
  if (!upstream) {
    std::fprintf(stderr, "glmproxy-bench: %s\n", error.c_str());
    curl_global_cleanup();
    return 1;
  }
  ctx.base_url = upstream->base_url();
  ctx.counters = [&upstream] { return upstream->counters(); };
  std::vector<bool> pinnings;
  if (o.run_pinned && upstream->can_pin()) pinnings.push_back(true);
  if (o.run_unpinned || pinnings.empty()) pinnings.push_back(false);
  if (o.run_pinned && !upstream->can_pin()) {
    std::fprintf(stderr,
                 "glmproxy-bench: pinning needs --mock process and two or more allowed CPUs; "
                 "every step runs unpinned\n");
  }
  const std::vector<Step> steps = plan(o, sweep, rate, pinnings);
  // The idle-RSS measurement and the soak run under the first pinning, as the steps begin.
  auto pin = [&upstream](bool pinned) { return upstream->set_pinning(pinned); };
  if (std::string e = pin(pinnings.front()); !e.empty()) {
    std::fprintf(stderr, "glmproxy-bench: %s\n", e.c_str());
  }

  const double per_step = ctx.limits.seconds + ctx.warmup.seconds + 3;
  const double budget = o.timeout > 0 ? o.timeout
                                      : 120 + 3 * per_step * static_cast<double>(steps.size()) +
                                            (soak ? static_cast<double>(*soak) * 1e-3 : 0.0);
  Watchdog watchdog(budget);

  Report report;
  report.command.assign(argv, argv + argc);
  report.started_at = utc_now();
  report.nproc = static_cast<int>(sysconf(_SC_NPROCESSORS_ONLN));
  report.cpu_model = cpu_model();
  report.loadavg_start = loadavg();
  utsname un{};
  if (uname(&un) == 0) report.kernel = std::string(un.sysname) + " " + un.release;
  report.upstream_kind = std::string(upstream->kind());
  report.base_url = upstream->base_url();
  report.mock_binary = upstream->mock_binary();
  report.pinned = pinnings.front();
  for (const bool p : pinnings) report.pinnings.emplace_back(p ? "pinned" : "unpinned");
  report.bench_cpu = upstream->bench_cpu();
  report.mock_cpu = upstream->mock_cpu();
  report.stats_available = upstream->counters().has_value();
  report.quick = o.quick;
  report.limits = ctx.limits;
  report.warmup = ctx.warmup;
  for (int c : sweep) {
    if (c != 0) report.concurrency.push_back(c);
  }
  report.rate = rate;
  for (Workload w : o.workloads) report.workloads.emplace_back(to_string(w));

  std::fprintf(stderr, "glmproxy-bench: upstream %s (%s)%s; %zu steps of up to %.1f s\n",
               report.base_url.c_str(), report.upstream_kind.c_str(),
               upstream->can_pin()
                   ? (", pinned steps: mock on CPU " + std::to_string(report.mock_cpu) +
                      ", this tool on CPU " + std::to_string(report.bench_cpu))
                         .c_str()
                   : "",
               steps.size(), ctx.limits.seconds);

  if (idle_seconds > 0) {
    IdleRss idle = measure_idle_rss(ctx.base_url, idle_seconds);
    idle.curl_global_init = curl_init_bytes;
    report.idle = idle;
  }
  for (std::size_t i = 0; i < steps.size(); ++i) {
    std::fprintf(stderr, "[%zu/%zu] %s\n", i + 1, steps.size(), step_name(steps[i]).c_str());
    const std::string pin_error = pin(steps[i].pinned);
    const std::string load = loadavg();
    RunResult r = pin_error.empty() ? run_step(ctx, steps[i]) : RunResult{};
    if (!pin_error.empty()) {  // not measured as labelled: say so, and exit 1
      r.workload = std::string(to_string(steps[i].workload));
      r.mode = steps[i].rate > 0 ? "open" : "closed";
      r.client = "?";
      r.concurrency = steps[i].concurrency;
      r.rate = steps[i].rate;
      r.fail(pin_error);
    }
    r.pinning = steps[i].pinned ? "pinned" : "unpinned";
    r.loadavg = load;
    report.runs.push_back(std::move(r));
  }
  if (soak) {
    if (std::string e = pin(pinnings.front()); !e.empty()) {
      std::fprintf(stderr, "glmproxy-bench: %s\n", e.c_str());
    }
    SoakOptions so;
    so.requests = *soak;
    so.sample_every = std::min<std::uint64_t>(100'000, std::max<std::uint64_t>(1, *soak / 10));
    so.miss_every = o.soak_miss_every.value_or(so.miss_every);
    std::fprintf(stderr, "soak: %llu requests, one miss every %llu\n",
                 static_cast<unsigned long long>(so.requests),
                 static_cast<unsigned long long>(so.miss_every));
    report.soak = run_soak(ctx, so);
  }
  report.wall_seconds = std::chrono::duration<double>(Clock::now() - wall_start).count();
  report.loadavg_end = loadavg();

  print_tables(stdout, report);
  std::fflush(stdout);
  int status = 0;
  if (!output.empty()) {
    std::ofstream out(output, std::ios::trunc);
    out << to_json(report);
    if (!out) {
      std::fprintf(stderr, "glmproxy-bench: could not write %s\n", output.c_str());
      status = 1;
    } else {
      std::fprintf(stderr, "glmproxy-bench: wrote %s (%.1f s)\n", output.c_str(),
                   report.wall_seconds);
    }
  }
  for (const RunResult& r : report.runs) {
    if (r.errors != 0 || r.requests == 0) {
      std::fprintf(stderr, "glmproxy-bench: %s %s (%s): %llu requests, %llu errors%s%s\n",
                   r.workload.c_str(), r.client.c_str(), r.api.c_str(),
                   static_cast<unsigned long long>(r.requests),
                   static_cast<unsigned long long>(r.errors), r.first_error.empty() ? "" : ": ",
                   r.first_error.c_str());
      status = 1;
    }
  }
  if (report.soak && (report.soak->errors != 0 || report.soak->requests == 0)) {
    std::fprintf(stderr, "glmproxy-bench: soak: %llu errors: %s\n",
                 static_cast<unsigned long long>(report.soak->errors),
                 report.soak->first_error.c_str());
    status = 1;
  }
  upstream.reset();
  curl_global_cleanup();
  return status;
}
