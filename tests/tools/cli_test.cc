// The `modgraph` tool as a user runs it: exit codes, stdout against the golden
// file, errors on stderr, --help on every subcommand, colour only on a terminal.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <pty.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "nlohmann/json.hpp"

namespace {

namespace fs = std::filesystem;
const fs::path kTool = MODGRAPH_TEST_TOOL;
const fs::path kGoldenDir = MODGRAPH_TEST_GOLDEN_DIR;

std::string ReadFile(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

struct ToolRun {
  int exit_code = -1;
  std::string out;
  std::string err;
};

class CliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = (fs::temp_directory_path() / "modgraph-cli-test-XXXXXX").string();
    dir_ = ::mkdtemp(pattern.data());
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  // Runs `modgraph <args>` through the shell with stdout and stderr in files.
  ToolRun Modgraph(const std::string& args, const std::string& env = "") {
    const fs::path out = dir_ / "out";
    const fs::path err = dir_ / "err";
    const std::string command = env + (env.empty() ? "" : " ") + "'" + kTool.string() + "' " +
                                args + " >'" + out.string() + "' 2>'" + err.string() + "'";
    const int status = std::system(command.c_str());
    ToolRun run;
    run.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    run.out = ReadFile(out);
    run.err = ReadFile(err);
    return run;
  }

  fs::path dir_;
};

TEST_F(CliTest, DoctorDevWarnPrintsTheGoldenTextAndExitsOne) {
  const ToolRun run = Modgraph("doctor --topology dev --policy warn");
  EXPECT_EQ(run.exit_code, 1) << run.err;
  EXPECT_EQ(run.out, ReadFile(kGoldenDir / "doctor_dev_warn.txt"));
  EXPECT_EQ(run.err, "");
}

TEST_F(CliTest, DoctorDefaultsToTheDevTopology) {
  const ToolRun run = Modgraph("doctor");
  EXPECT_EQ(run.exit_code, 1) << run.err;
  EXPECT_EQ(run.out, ReadFile(kGoldenDir / "doctor_dev_warn.txt"));
}

TEST_F(CliTest, DoctorIsCleanUnderAutoAndInProd) {
  ToolRun run = Modgraph("doctor --topology dev --policy auto");
  EXPECT_EQ(run.exit_code, 0) << run.out << run.err;
  EXPECT_NE(run.out.find("summary: clean"), std::string::npos) << run.out;
  run = Modgraph("doctor -t prod");
  EXPECT_EQ(run.exit_code, 0) << run.out << run.err;
  EXPECT_NE(run.out.find("environment prod (bundled, policy warn)"), std::string::npos);
}

TEST_F(CliTest, DoctorJsonIsParseable) {
  const ToolRun run = Modgraph("doctor --format json");
  EXPECT_EQ(run.exit_code, 1) << run.err;
  const nlohmann::json json = nlohmann::json::parse(run.out);
  EXPECT_EQ(json["summary"]["findings"], 2);
  EXPECT_EQ(json["summary"]["exit_code"], 1);
  EXPECT_EQ(json["findings"][0]["instance"], "ssr#head");
  EXPECT_EQ(json["findings"][1]["instance"], "ssr#router");
}

TEST_F(CliTest, ABadTopologyFileIsAnErrorOnStderr) {
  const fs::path bad = dir_ / "bad.toml";
  std::ofstream(bad) << "name = \"x\"\nnot_a_key = 1\n";
  const ToolRun run = Modgraph("doctor --topology '" + bad.string() + "'");
  EXPECT_EQ(run.exit_code, 2);
  EXPECT_EQ(run.out, "");
  EXPECT_NE(run.err.find("modgraph: error: "), std::string::npos) << run.err;
  EXPECT_NE(run.err.find("not_a_key"), std::string::npos) << run.err;

  const ToolRun missing =
      Modgraph("graph -f dot --topology '" + (dir_ / "none.toml").string() + "'");
  EXPECT_EQ(missing.exit_code, 2);
  EXPECT_NE(missing.err.find("none.toml"), std::string::npos) << missing.err;
}

TEST_F(CliTest, AModuleThatFailsToLoadIsExitTwoAndTheRestIsStillReported) {
  const fs::path file = dir_ / "broken.toml";
  std::ofstream(file) << "name = \"broken\"\n"
                         "[[environments]]\nname = \"good\"\nmodule_roots = [\""
                      << MODGRAPH_TEST_MODULE_DIR
                      << "\"]\nentries = [\"head\"]\n"
                         "[[environments]]\nname = \"bad\"\nmodule_roots = [\""
                      << MODGRAPH_TEST_MODULE_DIR << "\"]\nentries = [\"no-such-module\"]\n";
  const ToolRun run = Modgraph("doctor --format json --topology '" + file.string() + "'");
  EXPECT_EQ(run.exit_code, 2) << run.out << run.err;
  EXPECT_NE(run.err.find("no-such-module"), std::string::npos) << run.err;
  const nlohmann::json json = nlohmann::json::parse(run.out);
  EXPECT_EQ(json["summary"]["status"], "error");
  EXPECT_EQ(json["errors"].size(), 1u);
  EXPECT_EQ(json["environments"][0]["instances"], nlohmann::json::array({"good#head"}));
}

// throw-inside-dlopen: a module whose static initialiser throws is a named load
// error (the tool preflights every library), not an abort of the tool.
TEST_F(CliTest, AThrowingStaticInitialiserIsExitTwoNamingTheModuleNotACrash) {
  const fs::path file = dir_ / "static.toml";
  std::ofstream(file) << "name = \"static\"\n"
                         "[[environments]]\nname = \"node\"\nmodule_roots = [\""
                      << MODGRAPH_TEST_MODULE_DIR
                      << "\"]\nentries = [\"head\"]\n"
                         "[[environments]]\nname = \"ssr\"\nmodule_roots = [\""
                      << MODGRAPH_TEST_FIXTURE_DIR << "/bad\"]\nentries = [\"static-throw\"]\n";
  const ToolRun run = Modgraph("doctor --format json --topology '" + file.string() + "'");
  EXPECT_EQ(run.exit_code, 2) << run.out << run.err;
  EXPECT_NE(run.err.find("cannot load ssr#static-throw"), std::string::npos) << run.err;
  EXPECT_NE(run.err.find("uncaught std::runtime_error"), std::string::npos) << run.err;
  EXPECT_NE(run.err.find("registration failed during static init"), std::string::npos) << run.err;
  const nlohmann::json json = nlohmann::json::parse(run.out);
  EXPECT_EQ(json["environments"][0]["instances"], nlohmann::json::array({"node#head"}));
}

// The inputs that crashed `modgraph doctor` (section-header bounds wrapping
// around 2^64): a load error, exit 2, the file named; the rest still reported.
TEST_F(CliTest, AMalformedModuleFileIsALoadErrorNotACrash) {
  const fs::path root = dir_ / "roots";
  fs::create_directory(root);
  for (const char* name : {"section-headers-wrap", "dynsym-size-wraps", "dynsym-offset-wraps"}) {
    fs::copy_file(fs::path(MODGRAPH_TEST_MALFORMED_DIR) / (std::string(name) + ".so"),
                  root / (std::string(name) + ".so"));
    const fs::path file = dir_ / "crash.toml";
    std::ofstream(file, std::ios::trunc)
        << "name = \"crash\"\n[[environments]]\nname = \"crash\"\nmodule_roots = [\""
        << root.string() << "\"]\nentries = [\"" << name << "\"]\n"
        << "[[environments]]\nname = \"good\"\nmodule_roots = [\"" << MODGRAPH_TEST_MODULE_DIR
        << "\"]\nentries = [\"head\"]\n";
    const ToolRun run = Modgraph("doctor --topology '" + file.string() + "'");
    EXPECT_EQ(run.exit_code, 2) << name << run.err;
    EXPECT_NE(run.err.find((root / (std::string(name) + ".so")).string()), std::string::npos)
        << run.err;
    EXPECT_NE(run.err.find("not a loadable module library"), std::string::npos) << run.err;
    EXPECT_NE(run.out.find("environment good"), std::string::npos) << run.out;
  }
}

TEST_F(CliTest, AWritableModuleRootIsRefusedUnlessTheOwnerAllowsIt) {
  const fs::path root = dir_ / "shared-modules";
  fs::create_directory(root);
  fs::copy_file(fs::path(MODGRAPH_TEST_MODULE_DIR) / "head.so", root / "head.so");
  fs::permissions(root, fs::perms(0777));
  const fs::path file = dir_ / "shared.toml";
  std::ofstream(file) << "name = \"shared\"\n[[environments]]\nname = \"ssr\"\nmodule_roots = [\""
                      << root.string() << "\"]\nentries = [\"head\"]\n";
  ToolRun run = Modgraph("doctor --topology '" + file.string() + "'");
  EXPECT_EQ(run.exit_code, 2);
  EXPECT_NE(run.err.find("chmod go-w " + root.string()), std::string::npos) << run.err;
  run = Modgraph("doctor --allow-writable-module-paths --topology '" + file.string() + "'");
  EXPECT_EQ(run.exit_code, 1) << run.err;  // loaded: head alone has an unregistered slot
  EXPECT_NE(run.out.find("ssr#head"), std::string::npos) << run.out;
  run = Modgraph("show --allow-writable-module-paths --topology '" + file.string() + "'");
  EXPECT_EQ(run.exit_code, 0) << run.err;
  EXPECT_NE(run.out.find("ssr#head"), std::string::npos) << run.out;
}

TEST_F(CliTest, AProviderDeclaredForAModuleNobodyLoadsIsAFinding) {
  const fs::path file = dir_ / "typo.toml";
  std::ofstream(file) << "name = \"typo\"\n[providers]\nhaed = [\"head-state\"]\n"
                         "[[environments]]\nname = \"ssr\"\nmodule_roots = [\""
                      << MODGRAPH_TEST_MODULE_DIR << "\"]\nentries = [\"head\", \"head-state\"]\n";
  ToolRun run = Modgraph("doctor --topology '" + file.string() + "'");
  EXPECT_EQ(run.exit_code, 1) << run.out << run.err;
  EXPECT_NE(run.out.find("provider head-state is declared for module haed ([providers] of " +
                         file.string() + "), but no environment loads haed"),
            std::string::npos)
      << run.out;
  run = Modgraph("doctor --format json --topology '" + file.string() + "'");
  const nlohmann::json json = nlohmann::json::parse(run.out);
  ASSERT_EQ(json["dangling_providers"].size(), 1u);
  EXPECT_EQ(json["dangling_providers"][0]["target"], "haed");
  EXPECT_EQ(json["summary"]["status"], "findings");
}

TEST_F(CliTest, UsageErrorsExitTwoAndSayWhatToDo) {
  ToolRun run = Modgraph("doctor --policy sometimes");
  EXPECT_EQ(run.exit_code, 2);
  EXPECT_NE(run.err.find("--policy"), std::string::npos) << run.err;
  EXPECT_NE(run.err.find("--help"), std::string::npos) << run.err;
  run = Modgraph("graph");
  EXPECT_EQ(run.exit_code, 2);
  EXPECT_NE(run.err.find("--format is required"), std::string::npos) << run.err;
  run = Modgraph("");
  EXPECT_EQ(run.exit_code, 2);
  run = Modgraph("frobnicate");
  EXPECT_EQ(run.exit_code, 2);
}

TEST_F(CliTest, EverySubcommandHasHelp) {
  for (const char* command : {"show", "doctor", "graph", "serve", "probe", "parity"}) {
    const ToolRun run = Modgraph(std::string(command) + " --help");
    EXPECT_EQ(run.exit_code, 0) << command;
    EXPECT_NE(run.out.find("--topology"), std::string::npos) << command << run.out;
    EXPECT_NE(run.out.find("Exit status"), std::string::npos) << command << run.out;
  }
  const ToolRun run = Modgraph("--help");
  EXPECT_EQ(run.exit_code, 0);
  for (const char* command : {"show", "doctor", "graph", "serve", "probe", "parity"}) {
    EXPECT_NE(run.out.find(command), std::string::npos) << run.out;
  }
}

TEST_F(CliTest, ProbeReproducesTheLeakUnderWarnOnlyAndMinimisesIt) {
  const ToolRun warn = Modgraph("probe --topology dev --policy warn --requests 15 --seed 3");
  EXPECT_EQ(warn.exit_code, 1) << warn.err;
  EXPECT_NE(warn.out.find("ssr#head slot get_ssr_head_children"), std::string::npos) << warn.out;
  EXPECT_NE(warn.out.find("responses carrying another request's data: 14 of 15"), std::string::npos)
      << warn.out;
  EXPECT_NE(warn.out.find("minimal reproducing set (2 request(s), seed 3)"), std::string::npos)
      << warn.out;
  // The module-state audit finds head's default from memory alone.
  EXPECT_NE(warn.out.find("module state written by two or more requests: 1 (audited 15 module "
                          "copies"),
            std::string::npos)
      << warn.out;
  EXPECT_NE(warn.out.find("environment ssr, ssr#head: modgraph::modules::(anonymous "
                          "namespace)::g_ssr_head_children (.bss, 24 bytes"),
            std::string::npos)
      << warn.out;
  // Same seed, same run.
  EXPECT_EQ(Modgraph("probe --topology dev --policy warn --requests 15 --seed 3").out, warn.out);
  for (const char* clean : {"probe --topology dev --policy auto", "probe --topology prod"}) {
    const ToolRun run = Modgraph(clean);
    EXPECT_EQ(run.exit_code, 0) << clean << run.out << run.err;
    EXPECT_NE(run.out.find("no leak"), std::string::npos) << run.out;
    EXPECT_NE(run.out.find("module state written by two or more requests: 0"), std::string::npos)
        << run.out;
  }
}

TEST_F(CliTest, ProbeAndParityRefuseAPageTheTopologyDoesNotServe) {
  for (const char* command : {"probe --page /nope", "parity --page /nope"}) {
    const ToolRun run = Modgraph(command);
    EXPECT_EQ(run.exit_code, 2) << command << run.out;
    EXPECT_NE(run.err.find("serves no page at /nope"), std::string::npos) << run.err;
    EXPECT_NE(run.err.find("/concurrent-head, /concurrent-router"), std::string::npos) << run.err;
    EXPECT_EQ(run.out.find("no leak"), std::string::npos) << run.out;
  }
  // A topology whose pages do not include the default page.
  const fs::path toml = dir_ / "store-only.toml";
  std::ofstream(toml) << "name = \"store-only\"\n[server]\npages_environment = \"ssr\"\n"
                      << "pages = [\"request-store-page\"]\n[[environments]]\nname = \"ssr\"\n"
                      << "module_roots = [\"" << MODGRAPH_TEST_MODULE_DIR << "\"]\n"
                      << "entries = [\"request-store-page\"]\n";
  const ToolRun run = Modgraph("probe -t '" + toml.string() + "'");
  EXPECT_EQ(run.exit_code, 2) << run.out;
  EXPECT_NE(run.err.find("serves no page at /concurrent-head: environment 'ssr' serves "
                         "/request-store"),
            std::string::npos)
      << run.err;
}

TEST_F(CliTest, ProbeCountsResponsesThatAreNot200AndGivesNoAllClear) {
  const ToolRun strict = Modgraph("probe --policy strict --requests 4");
  EXPECT_EQ(strict.exit_code, 1) << strict.out << strict.err;
  EXPECT_NE(strict.out.find("responses not 200: 4 of 4 (500: 4)"), std::string::npos) << strict.out;
  EXPECT_NE(strict.out.find("got 500 strict policy"), std::string::npos) << strict.out;
  EXPECT_EQ(strict.out.find("no leak:"), std::string::npos) << strict.out;
  const ToolRun parity = Modgraph("parity --policy strict --requests 4");
  EXPECT_EQ(parity.exit_code, 1) << parity.out << parity.err;
  EXPECT_NE(parity.out.find("dev responses not 200: 4 of 4 (500: 4)"), std::string::npos)
      << parity.out;
}

TEST_F(CliTest, ProbeReportsAccessorsThatLostTheirRequestContext) {
  const fs::path toml = dir_ / "lost.toml";
  std::ofstream(toml) << "name = \"lost\"\n[server]\npages_environment = \"ssr\"\n"
                      << "pages = [\"lost-ctx-page\"]\n[[environments]]\nname = \"ssr\"\n"
                      << "module_roots = [\"" << MODGRAPH_TESTKIT_FIXTURE_DIR << "\", \""
                      << MODGRAPH_TEST_MODULE_DIR << "\"]\n"
                      << "entries = [\"lost-ctx-page\", \"head-state\"]\n";
  const std::string probe = "probe -t '" + toml.string() + "' -n 15 --page /lost-ctx";
  for (const char* policy : {"warn", "auto"}) {
    const ToolRun run = Modgraph(probe + " -p " + policy);
    EXPECT_EQ(run.exit_code, 1) << run.out << run.err;
    EXPECT_NE(run.out.find("lost request contexts: 30\n  ssr#head slot get_ssr_head_children "
                           "through ssr#head-state: 30 call(s) with no request scope"),
              std::string::npos)
        << run.out;
    EXPECT_NE(run.out.find("modgraph::spawn_thread(fn)"), std::string::npos) << run.out;
  }
  const ToolRun strict = Modgraph(probe + " -p strict");
  EXPECT_EQ(strict.exit_code, 1) << strict.out << strict.err;
  EXPECT_NE(strict.out.find("responses not 200: 15 of 15 (500: 15)"), std::string::npos)
      << strict.out;
  // The control carries the context with modgraph::spawn_thread.
  const ToolRun bound = Modgraph(probe + "?bound=1 -p strict");
  EXPECT_EQ(bound.exit_code, 0) << bound.out << bound.err;
  EXPECT_NE(bound.out.find("lost request contexts: 0"), std::string::npos) << bound.out;
  EXPECT_NE(bound.out.find("no leak"), std::string::npos) << bound.out;
}

TEST_F(CliTest, DoctorReportsAnAnonymousKeySharedByTwoModuleCopies) {
  const fs::path toml = dir_ / "anon.toml";
  std::ofstream(toml) << "name = \"anon\"\n[[environments]]\nname = \"ssr\"\n"
                      << "module_roots = [\"" << MODGRAPH_REGISTRY_FIXTURE_DIR << "/modules\"]\n"
                      << "entries = [\"anon-key-setter\"]\n";
  const ToolRun run = Modgraph("doctor -t '" + toml.string() + "'");
  EXPECT_EQ(run.exit_code, 1) << run.out << run.err;
  EXPECT_NE(run.out.find("finding: an anonymous context key of type std::string is constructed by "
                         "2 module copies in environment ssr: ssr#anon-key-reader, "
                         "ssr#anon-key-setter"),
            std::string::npos)
      << run.out;
  EXPECT_NE(run.out.find("  fix: give the key a name"), std::string::npos) << run.out;
  EXPECT_NE(run.out.find("1 anonymous context key in module code"), std::string::npos) << run.out;
  const ToolRun json = Modgraph("doctor --format json -t '" + toml.string() + "'");
  const nlohmann::json report = nlohmann::json::parse(json.out);
  ASSERT_EQ(report["anonymous_keys"].size(), 1u) << json.out;
  EXPECT_EQ(report["anonymous_keys"][0]["constructed_by"].size(), 2u);
  EXPECT_EQ(report["summary"]["anonymous_keys"], 1);
}

TEST_F(CliTest, ParityListsDevWarnDivergencesAndNoneUnderAuto) {
  const ToolRun warn = Modgraph("parity --policy warn --requests 6");
  EXPECT_EQ(warn.exit_code, 1) << warn.err;
  EXPECT_NE(warn.out.find("5 divergence(s) in 6 response(s)"), std::string::npos) << warn.out;
  const ToolRun fixed = Modgraph("parity --policy auto --requests 6");
  EXPECT_EQ(fixed.exit_code, 0) << fixed.err;
  EXPECT_NE(fixed.out.find("0 divergence(s)"), std::string::npos) << fixed.out;
}

TEST_F(CliTest, GraphWritesDotAndHtmlFiles) {
  const fs::path dot = dir_ / "graph.dot";
  ToolRun run = Modgraph("graph --format dot -o '" + dot.string() + "'");
  EXPECT_EQ(run.exit_code, 0) << run.err;
  EXPECT_EQ(run.out, "");
  EXPECT_EQ(ReadFile(dot).rfind("digraph modgraph {", 0), 0u);

  const fs::path html = dir_ / "graph.html";
  run = Modgraph("graph --format html --output '" + html.string() + "'");
  EXPECT_EQ(run.exit_code, 0) << run.err;
  EXPECT_NE(ReadFile(html).find("<tr class=\"finding\" data-instance=\"ssr#head\""),
            std::string::npos);

  run = Modgraph("graph -f dot");  // to stdout
  EXPECT_EQ(run.exit_code, 0);
  EXPECT_EQ(run.out.rfind("digraph modgraph {", 0), 0u);

  run = Modgraph("graph -f dot -o '" + (dir_ / "no-dir" / "x.dot").string() + "'");
  EXPECT_EQ(run.exit_code, 2);
  EXPECT_NE(run.err.find("cannot write"), std::string::npos) << run.err;
}

TEST_F(CliTest, ShowStillListsBothBuiltInTopologies) {
  const ToolRun run = Modgraph("show --topology dev --topology prod");
  EXPECT_EQ(run.exit_code, 0) << run.err;
  EXPECT_NE(run.out.find("topology dev (built-in)"), std::string::npos);
  EXPECT_NE(run.out.find("topology prod (built-in)"), std::string::npos);
  EXPECT_NE(run.out.find("ssr#head"), std::string::npos);
}

// Runs the tool on a pseudo-terminal and returns what it printed.
std::string RunOnTerminal(const std::vector<std::string>& args, bool no_color) {
  int master = -1;
  const pid_t pid = ::forkpty(&master, nullptr, nullptr, nullptr);
  if (pid == 0) {
    if (no_color) {
      ::setenv("NO_COLOR", "1", 1);
    } else {
      ::unsetenv("NO_COLOR");
    }
    std::vector<char*> argv;
    std::string tool = kTool.string();
    argv.push_back(tool.data());
    std::vector<std::string> copy = args;
    for (std::string& arg : copy) argv.push_back(arg.data());
    argv.push_back(nullptr);
    ::execv(tool.c_str(), argv.data());
    ::_exit(127);
  }
  std::string out;
  char buffer[4096];
  for (;;) {
    const ssize_t n = ::read(master, buffer, sizeof buffer);
    if (n <= 0) break;  // EIO once the child has exited
    out.append(buffer, static_cast<std::size_t>(n));
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  ::close(master);
  return out;
}

TEST_F(CliTest, ColourOnlyOnATerminalAndNotWithNoColor) {
  const std::string colored = RunOnTerminal({"doctor"}, /*no_color=*/false);
  EXPECT_NE(colored.find("\x1b["), std::string::npos) << colored;
  EXPECT_NE(colored.find("finding:"), std::string::npos) << colored;
  const std::string plain = RunOnTerminal({"doctor"}, /*no_color=*/true);
  EXPECT_EQ(plain.find("\x1b["), std::string::npos) << plain;
  EXPECT_NE(plain.find("finding:"), std::string::npos) << plain;
  // Piped output (the other tests) never has colour, whatever NO_COLOR says.
  EXPECT_EQ(Modgraph("doctor", "env -u NO_COLOR").out.find('\x1b'), std::string::npos);
}

}  // namespace
