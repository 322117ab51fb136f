// Loading a library once in a helper process first; see preflight.h.
#include "modgraph/loader/preflight.h"

#include <dlfcn.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <string>
#include <system_error>
#include <vector>

#include "modgraph/context/request_context.h"

extern char** environ;

namespace modgraph {
namespace fs = std::filesystem;

namespace {

constexpr const char* kHelperName = "modgraph-preflight";
// The helper's protocol (preflight_main.cc): stages on this descriptor, and
// this exit status when a module descriptor points outside the library.
constexpr int kProgressFd = 3;
constexpr int kDescriptorsMalformed = 5;

// The helper's last lines say why; keep the message readable.
std::string Tail(std::string text, std::size_t max_bytes = 1500) {
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
  if (text.size() > max_bytes) text = "..." + text.substr(text.size() - max_bytes);
  for (char& c : text) {
    if (c == '\n') c = ' ';
  }
  return text;
}

}  // namespace

absl::StatusOr<fs::path> FindPreflightHelper() {
  if (const char* env = std::getenv("MODGRAPH_PREFLIGHT"); env != nullptr && *env != '\0') {
    if (::access(env, X_OK) == 0) return fs::path(env);
    return absl::NotFoundError(fmt::format(
        "$MODGRAPH_PREFLIGHT names '{}', which is not an executable; point it at the installed "
        "{} (libexec/modgraph/{})",
        env, kHelperName, kHelperName));
  }
  Dl_info info{};
  // The helper is installed relative to the core library every host links.
  if (::dladdr(reinterpret_cast<const void*>(&NextRequestId), &info) != 0 &&
      info.dli_fname != nullptr) {
    const fs::path core_dir = fs::path(info.dli_fname).parent_path();
    for (const fs::path& candidate :
         {core_dir / "libexec" / "modgraph" / kHelperName,
          core_dir.parent_path() / "libexec" / "modgraph" / kHelperName}) {
      if (::access(candidate.c_str(), X_OK) == 0) return candidate;
    }
    return absl::NotFoundError(
        fmt::format("the preflight helper {} is not installed next to '{}' (looked in "
                    "libexec/modgraph beside and above it); reinstall modgraph, set "
                    "$MODGRAPH_PREFLIGHT, or turn preflight off",
                    kHelperName, info.dli_fname));
  }
  return absl::NotFoundError(
      fmt::format("cannot locate libmodgraph_core to find the preflight helper {}; set "
                  "$MODGRAPH_PREFLIGHT or turn preflight off",
                  kHelperName));
}

absl::Status PreflightLibrary(const fs::path& library, const PreflightOptions& options) {
  fs::path helper = options.helper;
  if (helper.empty()) {
    absl::StatusOr<fs::path> found = FindPreflightHelper();
    if (!found.ok()) return found.status();
    helper = *std::move(found);
  }
  int out[2];
  if (::pipe2(out, O_CLOEXEC) != 0) return absl::ErrnoToStatus(errno, "preflight: pipe");
  // The helper reports each stage it passed on descriptor 3: an exit status of
  // 0 alone does not say the library loaded (an initialiser may call exit(0)).
  int progress[2];
  if (::pipe2(progress, O_CLOEXEC | O_NONBLOCK) != 0) {
    const int error = errno;
    ::close(out[0]);
    ::close(out[1]);
    return absl::ErrnoToStatus(error, "preflight: pipe");
  }
  posix_spawn_file_actions_t actions;
  ::posix_spawn_file_actions_init(&actions);
  // The child's stdout and stderr both go to the pipe (dup2 clears CLOEXEC).
  ::posix_spawn_file_actions_adddup2(&actions, out[1], STDOUT_FILENO);
  ::posix_spawn_file_actions_adddup2(&actions, out[1], STDERR_FILENO);
  ::posix_spawn_file_actions_adddup2(&actions, progress[1], kProgressFd);
  ::posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  std::string helper_arg = helper.string();
  // The helper's /proc/self is its own: name this process's descriptor instead.
  std::string library_arg = library.string();
  if (library_arg.starts_with("/proc/self/")) {
    library_arg = fmt::format("/proc/{}/{}", ::getpid(), library_arg.substr(11));
  }
  const std::string label =
      options.label.empty() ? fmt::format("'{}'", library.string()) : options.label;
  char* argv[] = {helper_arg.data(), library_arg.data(), nullptr};
  pid_t pid = -1;
  const int spawned = ::posix_spawn(&pid, helper.c_str(), &actions, nullptr, argv, environ);
  ::posix_spawn_file_actions_destroy(&actions);
  ::close(out[1]);
  ::close(progress[1]);
  if (spawned != 0) {
    ::close(out[0]);
    ::close(progress[0]);
    return absl::ErrnoToStatus(
        spawned, fmt::format("preflight: cannot start '{}' for {}", helper.string(), label));
  }
  std::string output;
  bool timed_out = false;
  const auto deadline = std::chrono::steady_clock::now() + options.timeout;
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      timed_out = true;
      break;
    }
    pollfd fd{out[0], POLLIN, 0};
    const int ready = ::poll(&fd, 1, static_cast<int>(left.count()));
    if (ready < 0 && errno == EINTR) continue;
    if (ready <= 0) continue;  // the deadline check above ends the loop
    char buffer[4096];
    const ssize_t n = ::read(out[0], buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;  // EOF: the child (and anything it started) closed the pipe
    if (output.size() < (1 << 16)) output.append(buffer, static_cast<std::size_t>(n));
  }
  ::close(out[0]);
  if (timed_out) ::kill(pid, SIGKILL);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  std::string stages;
  char buffer[64];
  for (ssize_t n; (n = ::read(progress[0], buffer, sizeof buffer)) > 0;) {
    stages.append(buffer, static_cast<std::size_t>(n));
  }
  ::close(progress[0]);
  const bool loaded = stages.find("loaded\n") != std::string::npos;
  const bool closed = stages.find("closed\n") != std::string::npos;
  if (timed_out) {
    return absl::FailedPreconditionError(fmt::format(
        "{} of {} did not finish within {} ms in a preflight process; the library was not "
        "loaded into this process: fix the {} that blocks",
        loaded ? "unloading" : "static initialisation", label, options.timeout.count(),
        loaded ? "finaliser" : "initialiser"));
  }
  const bool exited_zero = WIFEXITED(status) && WEXITSTATUS(status) == 0;
  if (exited_zero && loaded && closed) return absl::OkStatus();
  const std::string how =
      WIFSIGNALED(status)
          ? fmt::format("killed by signal {} ({})", WTERMSIG(status), ::strsignal(WTERMSIG(status)))
          : fmt::format("exit status {}", WEXITSTATUS(status));
  const std::string said = output.empty() ? "no output" : Tail(output);
  if (WIFEXITED(status) && WEXITSTATUS(status) == kDescriptorsMalformed) {
    return absl::InvalidArgumentError(fmt::format(
        "{} is not a loadable module library: in a preflight process, {}; rebuild it with "
        "modgraph_add_module() and MODGRAPH_MODULE, or remove it from the module roots",
        label, said));
  }
  if (!loaded && exited_zero) {
    return absl::FailedPreconditionError(fmt::format(
        "static initialisation of {} ended a preflight process with exit status 0 before the "
        "library finished loading ({}): a namespace-scope initialiser calls exit() or "
        "quick_exit(), which would end the host; the library was not loaded into this process",
        label, said));
  }
  if (!loaded) {
    return absl::FailedPreconditionError(fmt::format(
        "static initialisation of {} failed in a preflight process ({}): {}; the library was not "
        "loaded into this process — fix its namespace-scope initialisers (an exception thrown "
        "from one cannot be caught: it would end the host)",
        label, how, said));
  }
  return absl::FailedPreconditionError(fmt::format(
      "{} loaded in a preflight process, but unloading it {} ({}): {}; the library was not "
      "loaded into this process — fix its finalisers (static destructors, atexit handlers, "
      "DT_FINI or its fini array): a host runs them when a copy retires or the process exits",
      label, closed ? "and ending the process failed" : "failed", how, said));
}

}  // namespace modgraph
