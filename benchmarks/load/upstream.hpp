#pragma once

// The upstream glmproxy-bench talks to: the bundled mock as a child process (pinned to its
// own core when there are two), the mock inside this process, or any URL.

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "load/run.hpp"

namespace glmproxy::bench {

enum class UpstreamKind { Process, InProcess, Url };

struct UpstreamOptions {
  UpstreamKind kind = UpstreamKind::Process;
  std::string url;          ///< Url: the OpenAI-compatible base URL
  std::string mock_binary;  ///< Process: the glmproxy-mock-upstream executable ("" = search)
  /// Process: pinning may be asked for (set_pinning): with two or more allowed CPUs, the mock
  /// on the second, this process on the first. --no-pin / --pinning unpinned clear it.
  bool pin = true;
};

/// Thread safety: not thread-safe; counters() is for the thread that runs the steps.
class Upstream {
 public:
  /// Starts (or, for Url, checks for a stats endpoint on) the upstream, nothing pinned yet;
  /// nullptr and `error` when it cannot. Process mode must be started before this process has
  /// other threads (it forks).
  static std::unique_ptr<Upstream> start(const UpstreamOptions& options, std::string* error);
  ~Upstream();  ///< stops the mock (a child process: SIGTERM, then SIGKILL after 3 s)
  Upstream(const Upstream&) = delete;
  Upstream& operator=(const Upstream&) = delete;

  const std::string& base_url() const noexcept;
  std::optional<MockCounters> counters();
  std::string_view kind() const noexcept;  ///< "process", "inprocess", "url"
  const std::string& mock_binary() const noexcept;
  /// Process mock, `pin` asked for and two or more CPUs allowed: set_pinning(true) can work.
  bool can_pin() const noexcept;
  /// Pinned: every thread of this process on bench_cpu(), every thread of the mock on
  /// mock_cpu(); unpinned: both on every CPU this process was allowed at start. Threads created
  /// later inherit their creator's set. Returns "" or what failed. Call between steps, when no
  /// client of a step is alive.
  std::string set_pinning(bool pinned);
  bool pinned() const noexcept;    ///< as the last set_pinning() left it
  int bench_cpu() const noexcept;  ///< the tool's CPU when pinned; -1 when it cannot pin
  int mock_cpu() const noexcept;   ///< the mock's CPU when pinned; -1 when it cannot pin

  class Impl;

 private:
  explicit Upstream(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

/// Kills a mock child process at once (SIGKILL); async-signal-safe, for signal handlers and
/// the watchdog. Does nothing when none runs.
void kill_mock_process_now() noexcept;

/// The CPUs this process may run on (sched_getaffinity), in order.
std::vector<int> allowed_cpus();

}  // namespace glmproxy::bench
