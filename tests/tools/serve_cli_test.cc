// `modgraph serve` as a user runs it: prints its port, answers over loopback,
// stops gracefully on SIGTERM and reports what the sentinel saw.
#include <fcntl.h>
#include <gmock/gmock.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "../server/raw_client.h"
#include "modgraph/testing/load_client.h"

namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::Not;

struct ServeProcess {
  pid_t pid = -1;
  int out = -1;
  std::string printed;

  // Reads stdout until `text` appears (or the process closes it).
  bool ReadUntil(std::string_view text) {
    char buffer[512];
    while (printed.find(text) == std::string::npos) {
      const ssize_t n = ::read(out, buffer, sizeof buffer);
      if (n <= 0) return false;
      printed.append(buffer, static_cast<size_t>(n));
    }
    return true;
  }
};

ServeProcess StartServe(std::vector<std::string> args) {
  int pipe_fds[2];
  EXPECT_EQ(::pipe(pipe_fds), 0);
  ServeProcess process;
  process.pid = ::fork();
  if (process.pid == 0) {
    ::dup2(pipe_fds[1], STDOUT_FILENO);
    ::close(pipe_fds[0]);
    std::vector<char*> argv = {const_cast<char*>(MODGRAPH_TEST_TOOL), const_cast<char*>("serve")};
    for (std::string& arg : args) argv.push_back(arg.data());
    argv.push_back(nullptr);
    ::execv(MODGRAPH_TEST_TOOL, argv.data());
    std::_Exit(127);
  }
  ::close(pipe_fds[1]);
  process.out = pipe_fds[0];
  return process;
}

int Port(const std::string& printed) {
  const std::size_t at = printed.find("http://127.0.0.1:");
  return at == std::string::npos ? 0 : std::atoi(printed.c_str() + at + 17);
}

// Fetches /concurrent-head?id=5 from the serve that printed `printed` and
// checks that the page answered for that request.
void ExpectServesTheHeadPage(const std::string& printed) {
  auto page =
      modgraph::testing::Fetch(static_cast<std::uint16_t>(Port(printed)), "/concurrent-head?id=5");
  ASSERT_TRUE(page.ok()) << page.status();
  EXPECT_THAT(page->body, HasSubstr("<title>req-5</title>"));
}

int StopAndWait(ServeProcess& process) {
  ::kill(process.pid, SIGTERM);
  process.ReadUntil("modgraph: stopped");
  int status = 0;
  ::waitpid(process.pid, &status, 0);
  ::close(process.out);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

// serve --watch: a rebuilt page is reloaded and served, a broken build is
// reported and the last good one keeps serving.
TEST(ServeCliTest, WatchReloadsARebuiltPageAndKeepsServingThroughABrokenBuild) {
  namespace fs = std::filesystem;
  std::string pattern = (fs::temp_directory_path() / "modgraph-watch-XXXXXX").string();
  const fs::path dir = ::mkdtemp(pattern.data());
  const fs::path root = dir / "root";
  fs::create_directory(root);
  auto put = [&](const fs::path& from, const std::string& name) {
    fs::copy_file(from, root / (name + ".tmp"));
    fs::rename(root / (name + ".tmp"), root / name);
  };
  const fs::path modules = MODGRAPH_TEST_MODULE_DIR;
  const fs::path builds = MODGRAPH_TEST_STRESS_FIXTURES;
  put(modules / "head.so", "head.so");
  put(modules / "head-state.so", "head-state.so");
  put(builds / "v1" / "stress-page.so", "stress-page.so");
  std::ofstream(dir / "watch.toml") << "name = \"watch\"\npolicy = \"auto\"\n"
                                       "[server]\npages_environment = \"ssr\"\n"
                                       "pages = [\"stress-page\"]\n"
                                       "[[environments]]\nname = \"ssr\"\n"
                                       "module_roots = [\"root\"]\n"
                                       "entries = [\"head-state\", \"stress-page\"]\n";
  ServeProcess serve =
      StartServe({"--topology", (dir / "watch.toml").string(), "--watch", "--debounce-ms", "20"});
  ASSERT_TRUE(serve.ReadUntil("Ctrl-C stops.")) << serve.printed;
  EXPECT_THAT(serve.printed, HasSubstr("watching " + root.string()));
  const int port = Port(serve.printed);
  auto get = [&](int id) {
    auto page = modgraph::testing::Fetch(static_cast<std::uint16_t>(port),
                                         "/stress?id=" + std::to_string(id));
    return page.ok() ? std::to_string(page->status) + " " + page->body
                     : std::string(page.status().message());
  };
  EXPECT_THAT(get(1), HasSubstr("v1 req-1"));
  put(builds / "v2" / "stress-page.so", "stress-page.so");
  ASSERT_TRUE(serve.ReadUntil("registry: every slot is registered")) << serve.printed;
  EXPECT_THAT(serve.printed, HasSubstr("reload #1: stress-page.so changed"));
  EXPECT_THAT(serve.printed, HasSubstr("ssr: reloaded ssr#stress-page"));
  EXPECT_THAT(get(2), HasSubstr("v2 req-2"));
  put(builds / "broken" / "stress-page.so", "stress-page.so");
  ASSERT_TRUE(serve.ReadUntil("this build of stress-page is broken")) << serve.printed;
  EXPECT_THAT(serve.printed, HasSubstr("ssr: FAILED, the old copies keep serving"));
  EXPECT_THAT(get(3), AllOf(HasSubstr("200"), HasSubstr("v2 req-3")));
  EXPECT_EQ(StopAndWait(serve), 0) << serve.printed;
  std::error_code ec;
  fs::remove_all(dir, ec);
}

TEST(ServeCliTest, ServesProdPagesAndStopsOnSigterm) {
  ServeProcess serve = StartServe({"--mode", "prod", "--port", "0"});
  ASSERT_TRUE(serve.ReadUntil("Ctrl-C stops.")) << serve.printed;
  const int port = Port(serve.printed);
  ASSERT_GT(port, 0) << serve.printed;
  EXPECT_THAT(serve.printed, HasSubstr("/concurrent-head"));
  auto page = modgraph::testing::Fetch(static_cast<std::uint16_t>(port), "/concurrent-head?id=4");
  ASSERT_TRUE(page.ok()) << page.status();
  EXPECT_EQ(page->status, 200);
  EXPECT_THAT(page->body, HasSubstr("<title>req-4</title>"));
  auto missing = modgraph::testing::Fetch(static_cast<std::uint16_t>(port), "/nope");
  ASSERT_TRUE(missing.ok());
  EXPECT_EQ(missing->status, 404);
  EXPECT_EQ(StopAndWait(serve), 0);
  EXPECT_THAT(serve.printed, HasSubstr("stopped after 2 request(s); 0 fallback hit(s)"));
}

TEST(ServeCliTest, DevWarnWithABarrierLeaksAndSaysSoWhenStopped) {
  ServeProcess serve = StartServe({"--mode", "dev", "--policy", "warn", "--barrier", "8"});
  ASSERT_TRUE(serve.ReadUntil("Ctrl-C stops.")) << serve.printed;
  const int port = Port(serve.printed);
  std::vector<std::string> targets;
  for (int i = 0; i < 8; ++i) targets.push_back("/concurrent-head?id=" + std::to_string(i));
  auto report = modgraph::testing::RunLoad(
      {.port = static_cast<std::uint16_t>(port), .connections = 8}, targets);
  ASSERT_TRUE(report.ok()) << report.status();
  int foreign = 0;
  for (std::size_t i = 0; i < targets.size(); ++i) {
    const std::string own = "<title>req-" + std::to_string(i) + "</title>";
    if (report->results[i].body.find(own) == std::string::npos) ++foreign;
  }
  EXPECT_EQ(foreign, 7);
  EXPECT_EQ(StopAndWait(serve), 0);
  EXPECT_THAT(serve.printed, HasSubstr("cross-request leak(s)"));
  EXPECT_THAT(serve.printed, Not(HasSubstr(" 0 cross-request leak(s)")));
}

// Stops the server and reads everything it prints until it exits.
int StopAndReadAll(ServeProcess& process) {
  ::kill(process.pid, SIGTERM);
  process.ReadUntil("\x01 never printed");  // to end of output
  int status = 0;
  ::waitpid(process.pid, &status, 0);
  ::close(process.out);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

TEST(ServeCliTest, AuditReportsModuleStateWrittenByTwoRequestsWhenStopped) {
  for (const char* policy : {"warn", "auto"}) {
    ServeProcess serve =
        StartServe({"--mode", "dev", "--policy", policy, "--audit", "--barrier", "4"});
    ASSERT_TRUE(serve.ReadUntil("Ctrl-C stops.")) << serve.printed;
    EXPECT_THAT(serve.printed, HasSubstr("module-state audit on"));
    const int port = Port(serve.printed);
    std::vector<std::string> targets;
    for (int i = 0; i < 4; ++i) targets.push_back("/concurrent-head?id=" + std::to_string(i));
    auto report = modgraph::testing::RunLoad(
        {.port = static_cast<std::uint16_t>(port), .connections = 4}, targets);
    ASSERT_TRUE(report.ok()) << report.status();
    EXPECT_EQ(StopAndReadAll(serve), 0);
    if (std::string_view(policy) == "warn") {
      EXPECT_THAT(serve.printed, HasSubstr("module state written by two or more requests: 1 "));
      EXPECT_THAT(serve.printed,
                  HasSubstr("environment ssr, ssr#head: modgraph::modules::(anonymous "
                            "namespace)::g_ssr_head_children"));
      EXPECT_THAT(serve.printed, HasSubstr("written by 4 requests"));
    } else {
      EXPECT_THAT(serve.printed, HasSubstr("module state written by two or more requests: 0 "));
    }
  }
}

TEST(ServeCliTest, AuditWithSeveralThreadsIsAnError) {
  ServeProcess serve = StartServe({"--mode", "dev", "--audit", "--threads", "2"});
  int status = 0;
  ::waitpid(serve.pid, &status, 0);
  ::close(serve.out);
  EXPECT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 2);
}

TEST(ServeCliTest, ModeAndTopologyTogetherIsAUsageError) {
  ServeProcess serve = StartServe({"--mode", "dev", "--topology", "prod"});
  int status = 0;
  ::waitpid(serve.pid, &status, 0);
  ::close(serve.out);
  EXPECT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 2);
}

// Runs `modgraph serve <args>` to completion; returns its exit status and stdout.
std::pair<int, std::string> RunToExit(std::vector<std::string> args) {
  ServeProcess process = StartServe(std::move(args));
  process.ReadUntil("\x01never printed");  // reads until the process closes stdout
  int status = 0;
  ::waitpid(process.pid, &status, 0);
  ::close(process.out);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, process.printed};
}

TEST(ServeCliTest, HelpListsTheLimitsWithTheirDefaults) {
  auto [status, help] = RunToExit({"--help"});
  EXPECT_EQ(status, 0);
  for (const char* expected :
       {"--max-connections", "512", "--idle-timeout", "75s", "--header-timeout", "1m",
        "--body-timeout", "--write-timeout", "--drain-timeout", "10s",
        "a second signal stops at once", "DURATION", "docs/server.md", "0..60000"}) {
    EXPECT_THAT(help, HasSubstr(expected));
  }
}

// --work-ms replaces the topology's simulated data fetch (the benchmarks serve
// with 0); it is bounded like ?delay_ms=.
TEST(ServeCliTest, WorkMsReplacesTheTopologysDataFetch) {
  ServeProcess defaults = StartServe({"--mode", "prod", "--port", "0"});
  ASSERT_TRUE(defaults.ReadUntil("Ctrl-C stops.")) << defaults.printed;
  EXPECT_THAT(defaults.printed,
              HasSubstr("pages await a simulated data fetch of 5 ms ([server] work_ms)"));
  EXPECT_EQ(StopAndWait(defaults), 0);

  ServeProcess zero = StartServe({"--mode", "prod", "--port", "0", "--work-ms", "0"});
  ASSERT_TRUE(zero.ReadUntil("Ctrl-C stops.")) << zero.printed;
  EXPECT_THAT(zero.printed, HasSubstr("pages await a simulated data fetch of 0 ms (--work-ms)"));
  ExpectServesTheHeadPage(zero.printed);
  EXPECT_EQ(StopAndWait(zero), 0);

  EXPECT_EQ(RunToExit({"--mode", "prod", "--work-ms", "60001"}).first, 2);
  EXPECT_EQ(RunToExit({"--mode", "prod", "--work-ms", "-1"}).first, 2);
}

// --busy-poll-us reaches the server and says so; it is bounded like
// HttpServer::Options::busy_poll.
TEST(ServeCliTest, BusyPollUsIsAppliedAndBounded) {
  ServeProcess polling =
      StartServe({"--mode", "prod", "--port", "0", "--threads", "2", "--busy-poll-us", "50"});
  ASSERT_TRUE(polling.ReadUntil("Ctrl-C stops.")) << polling.printed;
  EXPECT_THAT(polling.printed, HasSubstr("(2 thread(s), busy-polling 50 µs before blocking)"));
  ExpectServesTheHeadPage(polling.printed);
  EXPECT_EQ(StopAndWait(polling), 0);

  EXPECT_EQ(RunToExit({"--mode", "prod", "--busy-poll-us", "10001"}).first, 2);
  EXPECT_EQ(RunToExit({"--mode", "prod", "--busy-poll-us", "-1"}).first, 2);
}

TEST(ServeCliTest, ADurationNeedsAUnit) {
  EXPECT_EQ(RunToExit({"--mode", "prod", "--idle-timeout", "75"}).first, 2);
  EXPECT_EQ(RunToExit({"--mode", "prod", "--drain-timeout", "0s"}).first, 2);
  EXPECT_EQ(RunToExit({"--mode", "prod", "--max-connections", "0"}).first, 2);
}

TEST(ServeCliTest, LimitFlagsReachTheServer) {
  ServeProcess serve =
      StartServe({"--mode", "prod", "--port", "0", "--max-connections", "7", "--idle-timeout",
                  "200ms", "--header-timeout", "1500ms", "--drain-timeout", "2s"});
  ASSERT_TRUE(serve.ReadUntil("Ctrl-C stops.")) << serve.printed;
  EXPECT_THAT(serve.printed, HasSubstr("limits: 7 connections, idle 200ms, headers 1500ms, body "
                                       "1m, write 1m, drain 2s after a stop"));
  const int port = Port(serve.printed);
  ASSERT_GT(port, 0);
  // A connection that sends nothing is closed at the idle timeout.
  modgraph::server::test::RawClient silent(static_cast<std::uint16_t>(port));
  modgraph::server::test::RawClient::Read read = silent.ReadUntilClosed();
  EXPECT_TRUE(read.closed);
  EXPECT_EQ(read.bytes, "");
  // delay_ms past its bound is a 400, and the page still serves.
  auto too_long =
      modgraph::testing::Fetch(static_cast<std::uint16_t>(port), "/concurrent-head?delay_ms=60001");
  ASSERT_TRUE(too_long.ok()) << too_long.status();
  EXPECT_EQ(too_long->status, 400);
  EXPECT_EQ(StopAndWait(serve), 0);
}

}  // namespace
