// The loader's front door: module files, module ids and module roots are
// untrusted input. Malformed files are refused without reading out of bounds;
// an id is never a path; a root or file others can write is refused; what was
// checked is what loads; copy directories of live processes survive sweeps
// from any PID namespace.
#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sched.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <sstream>

#include "modgraph/environments/environment.h"
#include "modgraph/environments/topology.h"
#include "modgraph/loader/internal/discovery.h"
#include "modgraph/loader/library_loader.h"
#include "modgraph/loader/module_id.h"
#include "test_paths.h"

// The host's definition that a module exporting the same name binds to.
extern "C" __attribute__((visibility("default"), noinline)) int modgraph_interposed_answer() {
  return 42;
}

namespace modgraph {
namespace {

using ::modgraph::testing::CountEntries;
using ::modgraph::testing::kBadDir;
using ::modgraph::testing::kFixtureDir;
using ::modgraph::testing::kModuleDir;
using ::modgraph::testing::ScratchDir;
using ::testing::AllOf;
using ::testing::HasSubstr;
namespace fs = std::filesystem;

class UntrustedInputTest : public ::testing::Test {
 protected:
  LibraryLoader::Options Options() {
    return {.copy_mode = CopyMode::kTempFile, .temp_root = copies_.path()};
  }
  // A module root holding a copy of head.so, in a directory of its own.
  fs::path RootWithHead(const fs::path& parent) {
    const fs::path root = parent / "root";
    fs::create_directories(root);
    fs::copy_file(kModuleDir / "head.so", root / "head.so");
    return root;
  }

  ScratchDir scratch_;
  ScratchDir copies_;
};

// ---------------------------------------------------------------- malformed files

TEST_F(UntrustedInputTest, MalformedLibrariesAreRefusedWithoutReadingOutOfBounds) {
  LibraryLoader loader(Options());
  int files = 0;
  for (const auto& entry : fs::directory_iterator(kFixtureDir / "malformed")) {
    ++files;
    SCOPED_TRACE(entry.path().string());
    auto library = loader.Load(entry.path(), {"ssr", "malformed"});
    ASSERT_FALSE(library.ok());
    EXPECT_EQ(library.status().code(), absl::StatusCode::kInvalidArgument) << library.status();
    EXPECT_THAT(library.status().message(),
                AllOf(HasSubstr(entry.path().string()), HasSubstr("'ssr'")));
  }
  EXPECT_GE(files, 18);                                 // every variant make_malformed_elf writes
  EXPECT_EQ(CountEntries(loader.copy_directory()), 0);  // nothing was copied
}

TEST_F(UntrustedInputTest, FuzzRegressionsAreRefused) {
  LibraryLoader loader(Options());
  for (const auto& entry : fs::directory_iterator(::modgraph::testing::kFuzzRegressions / "elf")) {
    if (entry.path().filename().string().starts_with(".")) continue;
    auto library = loader.Load(entry.path(), {"ssr", "regression"});
    EXPECT_FALSE(library.ok()) << entry.path();
  }
}

TEST_F(UntrustedInputTest, MalformedFilesAreNotElfGnuUniqueHits) {
  for (const auto& entry : fs::directory_iterator(kFixtureDir / "malformed")) {
    EXPECT_TRUE(loader_internal::FindGnuUniqueSymbols(entry.path()).empty()) << entry.path();
  }
}

std::uint64_t BytesReadByThisProcess() {
  std::ifstream io("/proc/self/io");
  std::string key;
  std::uint64_t value = 0;
  while (io >> key >> value) {
    if (key == "rchar:") return value;
  }
  return 0;
}

TEST_F(UntrustedInputTest, ReadsOnlyTheHeaderOfAFileThatIsNotElf) {
  const fs::path root = scratch_.path() / "root";
  fs::create_directory(root);
  const fs::path big = root / "notes.so";
  std::ofstream(big) << "#!/bin/sh\necho this is not a library\n";
  fs::resize_file(big, std::uint64_t{256} << 20);  // sparse: 256 MiB
  LibraryLoader loader(Options());
  const std::uint64_t before = BytesReadByThisProcess();
  auto library = loader.Load(root, "notes.so", {"ssr", "notes"});
  const std::uint64_t read = BytesReadByThisProcess() - before;
  ASSERT_FALSE(library.ok());
  EXPECT_THAT(library.status().message(), HasSubstr("not an ELF shared library"));
  EXPECT_LT(read, 1u << 20) << "read " << read << " bytes to reject a non-ELF file";
}

// ---------------------------------------------------------------- check, then use

TEST_F(UntrustedInputTest, AFileSwappedAfterTheCheckIsNotWhatLoads) {
  const fs::path root = RootWithHead(scratch_.path());
  // Another library, owned and trusted like the first, that the swap puts in
  // head.so's place once the loader has checked head.so.
  const fs::path other = scratch_.path() / "other.so";
  fs::copy_file(kFixtureDir / "probe" / "head-probe.so", other);
  LibraryLoader::Options options = Options();
  int swaps = 0;
  options.after_checks_for_test = [&](const fs::path& file) {
    ++swaps;
    fs::rename(other, file);
  };
  LibraryLoader loader(options);
  auto library = loader.Load(root, "head.so", {"ssr", "head"});
  ASSERT_EQ(swaps, 1);
  ASSERT_TRUE(library.ok()) << library.status();
  ASSERT_EQ((*library)->descriptors().size(), 1u);
  EXPECT_STREQ((*library)->descriptors()[0]->id, "head");  // the bytes that were checked
}

// ---------------------------------------------------------------- permissions

TEST_F(UntrustedInputTest, RefusesALibraryWritableByItsGroup) {
  const fs::path root = RootWithHead(scratch_.path());
  ASSERT_EQ(::chmod((root / "head.so").c_str(), 0664), 0);
  LibraryLoader loader(Options());
  auto library = loader.Load(root, "head.so", {"ssr", "head"});
  ASSERT_FALSE(library.ok());
  EXPECT_EQ(library.status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(library.status().message(),
              AllOf(HasSubstr("writable by its group"), HasSubstr("chmod go-w")));
}

TEST_F(UntrustedInputTest, RefusesAWorldWritableModuleRoot) {
  const fs::path root = RootWithHead(scratch_.path());
  ASSERT_EQ(::chmod(root.c_str(), 0777), 0);
  LibraryLoader loader(Options());
  auto library = loader.Load(root, "head.so", {"ssr", "head"});
  ASSERT_FALSE(library.ok());
  EXPECT_EQ(library.status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(library.status().message(),
              AllOf(HasSubstr("module root '" + root.string() + "'"),
                    HasSubstr("writable by group and others"), HasSubstr("chmod go-w")));
}

TEST_F(UntrustedInputTest, RefusesARootWhoseParentOthersCanWrite) {
  const fs::path parent = scratch_.path() / "shared";
  const fs::path root = RootWithHead(parent);
  ASSERT_EQ(::chmod(parent.c_str(), 0777), 0);
  LibraryLoader loader(Options());
  auto library = loader.Load(root, "head.so", {"ssr", "head"});
  ASSERT_FALSE(library.ok());
  EXPECT_THAT(library.status().message(),
              AllOf(HasSubstr("parent directory '" + parent.string() + "'"),
                    HasSubstr("chmod go-w " + parent.string())));
}

TEST_F(UntrustedInputTest, AcceptsAStickyParentLikeTmp) {
  const fs::path parent = scratch_.path() / "sticky";
  const fs::path root = RootWithHead(parent);
  ASSERT_EQ(::chmod(parent.c_str(), 01777), 0);
  LibraryLoader loader(Options());
  auto library = loader.Load(root, "head.so", {"ssr", "head"});
  EXPECT_TRUE(library.ok()) << library.status();
}

TEST_F(UntrustedInputTest, AnOptionAcceptsWritablePathsTheUserOwns) {
  const fs::path root = RootWithHead(scratch_.path());
  ASSERT_EQ(::chmod(root.c_str(), 0775), 0);
  ASSERT_EQ(::chmod((root / "head.so").c_str(), 0664), 0);
  LibraryLoader::Options options = Options();
  options.allow_writable_module_paths = true;
  LibraryLoader loader(options);
  auto library = loader.Load(root, "head.so", {"ssr", "head"});
  EXPECT_TRUE(library.ok()) << library.status();
}

TEST_F(UntrustedInputTest, RefusesALibraryOwnedByAnotherUser) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to give a file to another user";
  const fs::path root = RootWithHead(scratch_.path());
  ASSERT_EQ(::chown((root / "head.so").c_str(), 65534, 65534), 0);
  LibraryLoader::Options options = Options();
  options.allow_writable_module_paths = true;  // does not cover other owners
  LibraryLoader loader(options);
  auto library = loader.Load(root, "head.so", {"ssr", "head"});
  ASSERT_FALSE(library.ok());
  EXPECT_THAT(library.status().message(), HasSubstr("owned by uid 65534"));
}

TEST_F(UntrustedInputTest, APathMayNotClimbOutOfItsRoot) {
  const fs::path root = RootWithHead(scratch_.path());
  fs::copy_file(kModuleDir / "head.so", scratch_.path() / "outside.so");
  LibraryLoader loader(Options());
  auto library = loader.Load(root, "../outside.so", {"ssr", "outside"});
  ASSERT_FALSE(library.ok());
  EXPECT_EQ(library.status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(library.status().message(), HasSubstr("outside the module root"));
}

// ---------------------------------------------------------------- module ids

TEST(ModuleIdTest, OneGrammar) {
  for (const char* id : {"head", "head-state", "a", "a1", "i18n-state", "x2-y3"}) {
    EXPECT_TRUE(IsValidModuleId(id)) << id;
  }
  for (const char* id : {"", "Head", "theme.dark", "../../outside/x", "/abs", "a--b", "a-", "1a",
                         "-a", "a_b", "a b", "a\n"}) {
    EXPECT_FALSE(IsValidModuleId(id)) << id;
  }
  EXPECT_TRUE(IsValidModuleId(std::string(64, 'a')));
  EXPECT_FALSE(IsValidModuleId(std::string(65, 'a')));
}

TEST(ModuleIdTest, TheErrorNamesTheIdWhereItCameFromAndAValidId) {
  const absl::Status status = ValidateModuleId("Theme.Dark", "app.toml:7:11");
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), AllOf(HasSubstr("'Theme.Dark'"), HasSubstr("app.toml:7:11"),
                                      HasSubstr("'theme-dark'")));
  EXPECT_THAT(ValidateModuleId("a\x01", "x").message(), HasSubstr("a\\x01"));
}

TEST_F(UntrustedInputTest, ADescriptorWithAnInvalidIdIsRefused) {
  LibraryLoader loader(Options());
  auto library = loader.Load(kBadDir / "bad-id.so", {"ssr", "bad-id"});
  ASSERT_FALSE(library.ok());
  EXPECT_THAT(library.status().message(),
              AllOf(HasSubstr("'Bad.Id'"), HasSubstr((kBadDir / "bad-id.so").string())));
}

// A slot cell the host could not write (here: a constant, read-only once
// relocated) would crash it at the first registration; refused at load.
TEST_F(UntrustedInputTest, ADescriptorPointingWhereTheHostCannotWriteIsRefused) {
  LibraryLoader loader(Options());
  auto library = loader.Load(kBadDir / "constant-cell.so", {"ssr", "constant-cell"});
  ASSERT_FALSE(library.ok());
  EXPECT_EQ(library.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(library.status().message(),
              AllOf(HasSubstr((kBadDir / "constant-cell.so").string()), HasSubstr("'ssr'"),
                    HasSubstr("slots[0].active_impl"), HasSubstr("MODGRAPH_MODULE")));
}

// Opening a FIFO for reading blocks until a writer appears: a FIFO named like
// a library must be refused at once, not hang the loader (or a watcher thread).
TEST_F(UntrustedInputTest, AFifoInARootIsRefusedWithoutBlocking) {
  const fs::path root = RootWithHead(scratch_.path());
  ASSERT_EQ(::mkfifo((root / "fifo.so").c_str(), 0600), 0);
  LibraryLoader loader(Options());
  auto library = loader.Load(root, "fifo.so", {"ssr", "fifo"});
  ASSERT_FALSE(library.ok());
  EXPECT_EQ(library.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(library.status().message(),
              AllOf(HasSubstr((root / "fifo.so").string()), HasSubstr("not a regular file")));
  EXPECT_TRUE(loader.Load(root, "head.so", {"ssr", "head"}).ok());
}

TEST_F(UntrustedInputTest, ADescriptorImportThatIsAPathIsRefused) {
  LibraryLoader loader(Options());
  auto library = loader.Load(kBadDir / "bad-import-id.so", {"ssr", "bad-import-id"});
  ASSERT_FALSE(library.ok());
  EXPECT_THAT(library.status().message(), AllOf(HasSubstr("'../../outside/x'"),
                                                HasSubstr("imports of module 'bad-import-id'")));
}

// A library outside the roots that leaves a trace if any of its code runs.
class IdAsPathTest : public UntrustedInputTest {
 protected:
  void SetUp() override {
    root_ = scratch_.path() / "app" / "modules";
    fs::create_directories(root_);
    fs::create_directories(scratch_.path() / "outside");
    fs::copy_file(kBadDir / "marker.so", scratch_.path() / "outside" / "x.so");
    marker_ = scratch_.path() / "marker.log";
    ::setenv("MODGRAPH_TEST_MARKER", marker_.c_str(), 1);
  }
  void TearDown() override { ::unsetenv("MODGRAPH_TEST_MARKER"); }
  bool MarkerRan() const { return fs::exists(marker_); }

  fs::path root_;
  fs::path marker_;
};

TEST_F(IdAsPathTest, AnImportThatIsAPathOpensNothing) {
  LibraryLoader loader(Options());
  auto env = Environment::Create({.name = "ssr", .module_roots = {root_}}, loader);
  ASSERT_TRUE(env.ok()) << env.status();
  for (const char* id : {"../outside/x", "../../outside/x", "/abs/x", "Head"}) {
    auto imported = (*env)->Import(id);
    ASSERT_FALSE(imported.ok()) << id;
    EXPECT_EQ(imported.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(imported.status().message(), HasSubstr("is not valid"));
  }
  EXPECT_FALSE(MarkerRan());
}

TEST_F(IdAsPathTest, TopologyEntriesAndProvidersThatArePathsOpenNothing) {
  const fs::path file = scratch_.path() / "app" / "app.toml";
  for (const std::string& body :
       {std::string("entries = [\"../outside/x\"]\n"), std::string("entries = [\"/tmp/x\"]\n")}) {
    std::ofstream(file) << "name = \"app\"\n[[environments]]\nname = \"ssr\"\n"
                        << "module_roots = [\"modules\"]\n"
                        << body;
    auto spec = LoadTopologyFile(file);
    ASSERT_FALSE(spec.ok());
    EXPECT_THAT(spec.status().message(),
                AllOf(HasSubstr(file.string() + ":5:"), HasSubstr("is not valid")));
  }
  std::ofstream(file) << "name = \"app\"\n[providers]\n\"theme.dark\" = [\"head-state\"]\n"
                      << "[[environments]]\nname = \"ssr\"\nmodule_roots = [\"modules\"]\n";
  auto spec = LoadTopologyFile(file);
  ASSERT_FALSE(spec.ok());
  EXPECT_THAT(spec.status().message(), AllOf(HasSubstr("'theme.dark'"), HasSubstr("[providers]"),
                                             HasSubstr("'theme-dark'")));
  std::ofstream(file) << "name = \"app\"\n[providers]\nhead = [\"../outside/x\"]\n"
                      << "[[environments]]\nname = \"ssr\"\nmodule_roots = [\"modules\"]\n";
  EXPECT_FALSE(LoadTopologyFile(file).ok());
  EXPECT_FALSE(MarkerRan());
}

// ---------------------------------------------------------------- what a module may export

TEST_F(UntrustedInputTest, InterposableExportsAreRefused) {
  const fs::path library_path = kFixtureDir / "exports" / "exports-data.so";
  LibraryLoader loader(Options());
  auto library = loader.Load(library_path, {"ssr", "exports-data"});
  ASSERT_FALSE(library.ok());
  EXPECT_EQ(library.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(library.status().message(),
              AllOf(HasSubstr("modgraph_interposed_answer"), HasSubstr("--version-script"),
                    HasSubstr("modgraph_add_module()")));
}

// Negative control: loaded anyway, the module's call to its own function runs
// the host's.
TEST_F(UntrustedInputTest, AnExportedSymbolBindsToTheHostsDefinitionWhenAllowed) {
  struct Api {
    int (*answer)();
  };
  LibraryLoader::Options options = Options();
  options.allow_interposable_exports = true;
  LibraryLoader loader(options);
  auto library = loader.Load(kFixtureDir / "exports" / "exports-data.so", {"ssr", "exports-data"});
  ASSERT_TRUE(library.ok()) << library.status();
  const auto* api = static_cast<const Api*>((*library)->descriptors().front()->api);
  EXPECT_EQ(api->answer(), modgraph_interposed_answer());  // 42, not the module's own 7
}

TEST_F(UntrustedInputTest, FrameworkModulesExportOnlyTheirDescriptors) {
  LibraryLoader loader(Options());
  for (const auto& entry : fs::directory_iterator(kModuleDir)) {
    if (entry.path().extension() != ".so") continue;
    auto library = loader.Load(entry.path(), {"ssr", entry.path().stem().string()});
    EXPECT_TRUE(library.ok()) << library.status();
  }
}

TEST_F(UntrustedInputTest, OwnInitialExecTlsIsRefusedWithTheFlagThatFixesIt) {
  LibraryLoader loader(Options());
  auto library = loader.Load(kBadDir / "own-static-tls.so", {"ssr", "own-static-tls"});
  ASSERT_FALSE(library.ok());
  EXPECT_THAT(library.status().message(),
              AllOf(HasSubstr("initial-exec"), HasSubstr("-ftls-model=global-dynamic")));
}

// ---------------------------------------------------------------- copy directories

// Holds `dir` flock'ed in a child process until the returned pipe is closed.
pid_t HoldLock(const fs::path& dir, int& release_fd) {
  int ready[2], release[2];
  if (::pipe(ready) != 0 || ::pipe(release) != 0) return -1;
  const pid_t child = ::fork();
  if (child == 0) {
    ::close(ready[0]);
    ::close(release[1]);  // or the read below never sees end-of-file
    const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY);
    const char ok = (fd >= 0 && ::flock(fd, LOCK_EX) == 0) ? 'y' : 'n';
    (void)!::write(ready[1], &ok, 1);
    char byte;
    (void)!::read(release[0], &byte, 1);  // until the parent closes its end
    std::_Exit(0);
  }
  ::close(ready[1]);
  ::close(release[0]);
  char ok = 'n';
  (void)!::read(ready[0], &ok, 1);
  ::close(ready[0]);
  release_fd = release[1];
  return ok == 'y' ? child : -1;
}

TEST_F(UntrustedInputTest, ASweepKeepsADirectoryWhoseLockIsHeldWhateverItsPid) {
  const pid_t dead = ::fork();
  if (dead == 0) std::_Exit(0);
  ASSERT_EQ(::waitpid(dead, nullptr, 0), dead);
  // Named after a pid with no process (as seen from here), but in use.
  const fs::path in_use = copies_.path() / ("modgraph-" + std::to_string(dead) + "-inuse1");
  const fs::path stale = copies_.path() / ("modgraph-" + std::to_string(dead) + "-stale1");
  fs::create_directory(in_use);
  fs::create_directory(stale);
  std::ofstream(in_use / "ssr#head.1.so") << "a live server's copy";
  int release = -1;
  const pid_t holder = HoldLock(in_use, release);
  ASSERT_GT(holder, 0);
  LibraryLoader loader(Options());
  ASSERT_TRUE(loader.Load(kModuleDir / "head.so", {"ssr", "head"}).ok());  // sweeps
  EXPECT_TRUE(fs::exists(in_use / "ssr#head.1.so"));
  EXPECT_FALSE(fs::exists(stale));
  ::close(release);
  ASSERT_EQ(::waitpid(holder, nullptr, 0), holder);
}

// The running copy directory of this process survives a modgraph started in
// another PID namespace, where this process's pid means nothing.
TEST_F(UntrustedInputTest, ASweepFromAnotherPidNamespaceKeepsLiveCopies) {
  LibraryLoader loader(Options());
  auto library = loader.Load(kModuleDir / "head.so", {"ssr", "head"});
  ASSERT_TRUE(library.ok()) << library.status();
  const fs::path copy = (*library)->loaded_path();
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    if (::unshare(CLONE_NEWPID) != 0) std::_Exit(77);
    const pid_t inner = ::fork();  // pid 1 of the new namespace
    if (inner == 0) {
      LibraryLoader other({.copy_mode = CopyMode::kTempFile, .temp_root = copies_.path()});
      std::_Exit(other.Load(kModuleDir / "head.so", {"node", "head"}).ok() ? 0 : 3);
    }
    int status = 0;
    ::waitpid(inner, &status, 0);
    std::_Exit(WIFEXITED(status) ? WEXITSTATUS(status) : 4);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status));
  if (WEXITSTATUS(status) == 77) GTEST_SKIP() << "unshare(CLONE_NEWPID) is not permitted here";
  ASSERT_EQ(WEXITSTATUS(status), 0);
  EXPECT_TRUE(fs::exists(copy)) << "a sweep in another PID namespace removed a live copy";
}

// ---------------------------------------------------------------- limits

TEST_F(UntrustedInputTest, RunningOutOfDescriptorsForMemfdCopiesSaysUlimit) {
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    LibraryLoader loader({.copy_mode = CopyMode::kMemfd});
    std::vector<std::shared_ptr<LoadedLibrary>> kept;
    const rlimit low{64, 64};
    ::setrlimit(RLIMIT_NOFILE, &low);
    for (int i = 0; i < 128; ++i) {
      auto library = loader.Load(kModuleDir / "head.so", {"ssr", "head"});
      if (library.ok()) {
        kept.push_back(*library);
        continue;
      }
      const std::string message(library.status().message());
      std::_Exit(message.find("ulimit -n") != std::string::npos ? 0 : 5);
    }
    std::_Exit(6);  // never ran out
  }
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
}

TEST(CapacityTest, WarnsBeforeLoadingWhenCopiesWouldNotFit) {
  const Capacity roomy{
      .copy_root = "/dev/shm", .free_bytes = 1 << 30, .mappings = 300, .max_mappings = 65530};
  EXPECT_TRUE(CapacityWarnings({.copies = 100, .bytes = 4 << 20, .mappings = 500}, roomy).empty());

  Capacity small = roomy;
  small.free_bytes = 64 << 20;  // a 64 MiB /dev/shm
  const std::vector<std::string> full =
      CapacityWarnings({.copies = 4000, .bytes = 80 << 20, .mappings = 20000}, small);
  ASSERT_EQ(full.size(), 1u);
  EXPECT_THAT(full[0], AllOf(HasSubstr("4000 private copies"), HasSubstr("/dev/shm"),
                             HasSubstr("MODGRAPH_COPY_DIR")));

  const std::vector<std::string> maps =
      CapacityWarnings({.copies = 16000, .bytes = 1 << 20, .mappings = 80000}, roomy);
  ASSERT_EQ(maps.size(), 1u);
  EXPECT_THAT(maps[0], AllOf(HasSubstr("vm.max_map_count = 65530"), HasSubstr("sysctl -w")));
}

TEST(CapacityTest, ATopologyPlansACopyOfEveryLibraryInItsIsolatedRoots) {
  ScratchDir scratch;
  LibraryLoader::Options options{.temp_root = scratch.path()};
  TopologySpec spec{.name = "plan", .origin = "test"};
  for (const char* name : {"node", "ssr"}) {
    spec.environments.push_back({.name = name, .module_roots = {kModuleDir}});
  }
  auto topology = Topology::Create(spec, options);
  ASSERT_TRUE(topology.ok()) << topology.status();
  int libraries = 0;
  std::uint64_t bytes = 0;
  for (const auto& entry : fs::directory_iterator(kModuleDir)) {
    if (entry.path().extension() != ".so") continue;
    ++libraries;
    bytes += fs::file_size(entry.path());
  }
  const CapacityPlan plan = (*topology)->PlanCapacity();
  EXPECT_EQ(plan.copies, 2u * libraries);
  EXPECT_EQ(plan.bytes, 2 * bytes);
  EXPECT_EQ(plan.mappings, 5u * plan.copies);
  EXPECT_TRUE((*topology)->CapacityWarnings().empty());
}

}  // namespace
}  // namespace modgraph
