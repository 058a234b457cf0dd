#include "load/upstream.hpp"

#include <curl/curl.h>
#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <thread>
#include <vector>

#include "glmproxy/mock/mock_upstream.hpp"

namespace glmproxy::bench {

namespace {

// The mock child, for kill_mock_process_now() (signal handlers, the watchdog).
std::atomic<pid_t> g_mock_pid{0};

constexpr std::string_view kOpenAiPath = "/api/paas/v4";

size_t collect(char* data, size_t size, size_t n, void* user) {
  static_cast<std::string*>(user)->append(data, size * n);
  return size * n;
}

std::optional<std::uint64_t> json_uint(const std::string& body, std::string_view name) {
  std::string key = "\"";  // built by appending: GCC 12 -O3 warns on "literal" + string&&
  key += name;
  key += "\":";
  const auto pos = body.find(key);
  if (pos == std::string::npos) return std::nullopt;
  const char* start = body.c_str() + pos + key.size();
  char* end = nullptr;
  const unsigned long long v = std::strtoull(start, &end, 10);
  if (end == start) return std::nullopt;
  return static_cast<std::uint64_t>(v);
}

// "http://host:port/a/b" -> "http://host:port"
std::string origin_of(const std::string& url) {
  const auto scheme = url.find("://");
  if (scheme == std::string::npos) return url;
  const auto slash = url.find('/', scheme + 3);
  return slash == std::string::npos ? url : url.substr(0, slash);
}

std::string find_mock_binary(const std::string& given) {
  namespace fs = std::filesystem;
  if (!given.empty()) return given;
  std::error_code ec;
  const fs::path self = fs::read_symlink("/proc/self/exe", ec);
  std::vector<fs::path> candidates;
  if (!ec) {
    candidates.push_back(self.parent_path() / "glmproxy-mock-upstream");
    candidates.push_back(self.parent_path() / ".." / "mock" / "glmproxy-mock-upstream");
  }
#ifdef GLMPROXY_BENCH_MOCK_BINARY
  candidates.emplace_back(GLMPROXY_BENCH_MOCK_BINARY);
#endif
  for (const auto& c : candidates) {
    if (fs::exists(c, ec) && access(c.c_str(), X_OK) == 0) {
      return fs::weakly_canonical(c, ec).string();
    }
  }
  return {};
}

// Sets the CPUs of every thread of process `pid` (sched_setaffinity acts on one thread).
// Returns "" or what failed; a thread that ended meanwhile is no failure.
std::string set_affinity_of_all_threads(pid_t pid, const cpu_set_t& set) {
  const std::string dir = "/proc/" + std::to_string(pid) + "/task";
  DIR* d = opendir(dir.c_str());
  if (d == nullptr) return "opendir " + dir + ": " + std::strerror(errno);
  std::string error;
  int threads = 0;
  while (dirent* e = readdir(d)) {
    char* end = nullptr;
    const long tid = std::strtol(e->d_name, &end, 10);
    if (tid <= 0 || *end != '\0') continue;  // "." and ".."
    if (sched_setaffinity(static_cast<pid_t>(tid), sizeof set, &set) != 0 && errno != ESRCH) {
      error = "sched_setaffinity(thread " + std::to_string(tid) + "): " + std::strerror(errno);
      break;
    }
    ++threads;
  }
  closedir(d);
  if (error.empty() && threads == 0) error = "no threads listed in " + dir;
  return error;
}

cpu_set_t cpu_set_of(const std::vector<int>& cpus) {
  cpu_set_t set;
  CPU_ZERO(&set);
  for (int cpu : cpus) CPU_SET(static_cast<std::size_t>(cpu), &set);
  return set;
}

}  // namespace

std::vector<int> allowed_cpus() {
  cpu_set_t set;
  CPU_ZERO(&set);
  std::vector<int> out;
  if (sched_getaffinity(0, sizeof set, &set) != 0) return out;
  for (std::size_t cpu = 0; cpu < CPU_SETSIZE; ++cpu) {
    if (CPU_ISSET(cpu, &set)) out.push_back(static_cast<int>(cpu));
  }
  return out;
}

void kill_mock_process_now() noexcept {
  const pid_t pid = g_mock_pid.exchange(0);
  if (pid > 0) kill(pid, SIGKILL);
}

class Upstream::Impl {
 public:
  ~Impl() {
    if (stats_easy_ != nullptr) curl_easy_cleanup(stats_easy_);
    stop_child();
    if (out_fd_ >= 0) close(out_fd_);
  }

  std::string start(const UpstreamOptions& options) {
    kind_ = options.kind;
    switch (options.kind) {
      case UpstreamKind::InProcess: {
        glmproxy::mock::MockOptions mo;
        mo.record_limit = 0;  // a long run must not grow
        std::string error;
        mock_ = glmproxy::mock::MockUpstream::start(mo, &error);
        if (!mock_) return fail("could not start the in-process mock upstream: " + error);
        base_url_ = mock_->base_url() + std::string(kOpenAiPath);
        stats_ok_ = true;
        return {};
      }
      case UpstreamKind::Url:
        base_url_ = options.url;
        while (!base_url_.empty() && base_url_.back() == '/') base_url_.pop_back();
        stats_url_ = origin_of(base_url_) + "/__mock/stats";
        stats_ok_ = true;
        stats_ok_ = fetch_counters().has_value();  // a real upstream has no stats endpoint
        return {};
      case UpstreamKind::Process:
        return spawn(options);
    }
    return {};
  }

  std::optional<MockCounters> counters() {
    if (!stats_ok_) return std::nullopt;
    if (mock_) {
      const auto s = mock_->stats();
      return MockCounters{s.connections_accepted, s.requests};
    }
    return fetch_counters();
  }

  std::string set_pinning(bool pinned) {
    if (pinned && !can_pin_) return "pinning needs --mock process and two or more CPUs";
    if (!can_pin_) {  // nothing was ever pinned
      pinned_ = false;
      return {};
    }
    const cpu_set_t bench = cpu_set_of(pinned ? std::vector<int>{bench_cpu_} : all_cpus_);
    const cpu_set_t mock = cpu_set_of(pinned ? std::vector<int>{mock_cpu_} : all_cpus_);
    std::string error = set_affinity_of_all_threads(pid_, mock);
    if (error.empty()) error = set_affinity_of_all_threads(getpid(), bench);
    if (!error.empty()) return (pinned ? "pinning: " : "unpinning: ") + error;
    pinned_ = pinned;
    return {};
  }

  // Start-up functions return "" or what went wrong.
  static std::string fail(std::string message) { return message; }

  std::string base_url_;
  UpstreamKind kind_ = UpstreamKind::Process;
  std::string binary_;
  bool can_pin_ = false, pinned_ = false;
  int bench_cpu_ = -1, mock_cpu_ = -1;
  std::vector<int> all_cpus_;  // what this process was allowed at start: "unpinned"

 private:
  // Forks before this process has any other thread, so the child runs only exec().
  std::string spawn(const UpstreamOptions& options) {
    binary_ = find_mock_binary(options.mock_binary);
    if (binary_.empty()) {
      return fail(
          "glmproxy-mock-upstream not found next to glmproxy-bench, in ../mock, or where it was "
          "built; pass --mock-binary PATH, --mock inprocess or --url URL");
    }
    all_cpus_ = allowed_cpus();
    can_pin_ = options.pin && all_cpus_.size() >= 2;
    if (can_pin_) {
      bench_cpu_ = all_cpus_[0];
      mock_cpu_ = all_cpus_[1];
    }
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0) return fail(std::string("pipe: ") + std::strerror(errno));
    std::string port_flag = "--port", port = "0", no_record = "--no-record";
    char* argv[] = {binary_.data(), port_flag.data(), port.data(), no_record.data(), nullptr};
    const pid_t parent = getpid();
    const pid_t pid = fork();
    if (pid < 0) {
      close(fds[0]);
      close(fds[1]);
      return fail(std::string("fork: ") + std::strerror(errno));
    }
    if (pid == 0) {
      // The child: die with the benchmark, whatever way it ends (even a crash).
      prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (getppid() != parent) _exit(1);
      sigset_t none;
      sigemptyset(&none);
      sigprocmask(SIG_SETMASK, &none, nullptr);
      dup2(fds[1], STDOUT_FILENO);
      execv(argv[0], argv);
      _exit(127);
    }
    pid_ = pid;
    g_mock_pid.store(pid);
    close(fds[1]);
    out_fd_ = fds[0];
    // "listening on http://HOST:PORT" within 10 s, or give up.
    std::string line;
    const auto deadline = Clock::now() + std::chrono::seconds(10);
    while (line.find('\n') == std::string::npos) {
      if (Clock::now() >= deadline) return fail("the mock upstream did not say where it listens");
      pollfd p{out_fd_, POLLIN, 0};
      const int ready = poll(&p, 1, 100);
      if (ready < 0 && errno != EINTR) return fail(std::string("poll: ") + std::strerror(errno));
      if (ready <= 0) continue;
      char buf[256];
      const ssize_t n = read(out_fd_, buf, sizeof buf);
      if (n <= 0) return fail("the mock upstream exited before listening (" + binary_ + ")");
      line.append(buf, static_cast<std::size_t>(n));
    }
    const std::string_view prefix = "listening on ";
    const auto at = line.find(prefix);
    if (at == std::string::npos) return fail("unexpected first line from the mock: " + line);
    std::string url = line.substr(at + prefix.size());
    url.erase(url.find_first_of("\r\n"));
    base_url_ = url + std::string(kOpenAiPath);
    stats_url_ = url + "/__mock/stats";
    stats_ok_ = true;
    if (!fetch_counters()) return fail("the mock upstream does not answer " + stats_url_);
    return {};
  }

  void stop_child() {
    if (pid_ <= 0) return;
    const pid_t pid = pid_;
    pid_ = 0;
    if (g_mock_pid.exchange(0) != pid) return;  // already killed by the watchdog
    kill(pid, SIGTERM);
    const auto deadline = Clock::now() + std::chrono::seconds(3);
    int status = 0;
    while (waitpid(pid, &status, WNOHANG) == 0) {
      if (Clock::now() >= deadline) {
        kill(pid, SIGKILL);
        waitpid(pid, &status, 0);
        return;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }

  std::optional<MockCounters> fetch_counters() {
    if (!stats_ok_) return std::nullopt;
    if (stats_easy_ == nullptr) {
      stats_easy_ = curl_easy_init();
      if (stats_easy_ == nullptr) return std::nullopt;
      curl_easy_setopt(stats_easy_, CURLOPT_URL, stats_url_.c_str());
      curl_easy_setopt(stats_easy_, CURLOPT_NOSIGNAL, 1L);
      curl_easy_setopt(stats_easy_, CURLOPT_TIMEOUT_MS, 3000L);
      curl_easy_setopt(stats_easy_, CURLOPT_WRITEFUNCTION, &collect);
      curl_easy_setopt(stats_easy_, CURLOPT_WRITEDATA, &stats_body_);
    }
    stats_body_.clear();
    long status = 0;
    if (curl_easy_perform(stats_easy_) != CURLE_OK) return std::nullopt;
    curl_easy_getinfo(stats_easy_, CURLINFO_RESPONSE_CODE, &status);
    if (status != 200) return std::nullopt;
    const auto conns = json_uint(stats_body_, "connections_accepted");
    const auto reqs = json_uint(stats_body_, "requests");
    if (!conns || !reqs) return std::nullopt;
    return MockCounters{*conns, *reqs};
  }

  std::unique_ptr<glmproxy::mock::MockUpstream> mock_;
  std::string stats_url_, stats_body_;
  CURL* stats_easy_ = nullptr;
  bool stats_ok_ = false;
  pid_t pid_ = 0;
  int out_fd_ = -1;
};

Upstream::Upstream(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Upstream::~Upstream() = default;

std::unique_ptr<Upstream> Upstream::start(const UpstreamOptions& options, std::string* error) {
  auto impl = std::make_unique<Impl>();
  if (std::string e = impl->start(options); !e.empty()) {
    if (error != nullptr) *error = std::move(e);
    return nullptr;  // ~Impl stops a child that did start
  }
  return std::unique_ptr<Upstream>(new Upstream(std::move(impl)));
}

const std::string& Upstream::base_url() const noexcept { return impl_->base_url_; }
std::optional<MockCounters> Upstream::counters() { return impl_->counters(); }
std::string_view Upstream::kind() const noexcept {
  switch (impl_->kind_) {
    case UpstreamKind::Process:
      return "process";
    case UpstreamKind::InProcess:
      return "inprocess";
    case UpstreamKind::Url:
      return "url";
  }
  return "?";
}
const std::string& Upstream::mock_binary() const noexcept { return impl_->binary_; }
bool Upstream::can_pin() const noexcept { return impl_->can_pin_; }
std::string Upstream::set_pinning(bool pinned) { return impl_->set_pinning(pinned); }
bool Upstream::pinned() const noexcept { return impl_->pinned_; }
int Upstream::bench_cpu() const noexcept { return impl_->bench_cpu_; }
int Upstream::mock_cpu() const noexcept { return impl_->mock_cpu_; }

}  // namespace glmproxy::bench
