// LibraryLoader: private copies, discovery, validation and the GNU-unique trap.
#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <iterator>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "modgraph/loader/internal/discovery.h"
#include "modgraph/loader/library_loader.h"
#include "test_paths.h"

namespace modgraph {
namespace {

using ::modgraph::testing::CountEntries;
using ::modgraph::testing::kBadDir;
using ::modgraph::testing::kFixtureDir;
using ::modgraph::testing::kModuleDir;
using ::modgraph::testing::ScratchDir;
using ::testing::HasSubstr;
namespace fs = std::filesystem;

struct UniqueProbeApi {
  int* (*inline_static)();
  int* (*plain_global)();
};

const UniqueProbeApi& ProbeApi(const LoadedLibrary& library) {
  return *static_cast<const UniqueProbeApi*>(library.descriptors().front()->api);
}

class LoaderTest : public ::testing::Test {
 protected:
  LibraryLoader::Options Options(CopyMode mode = CopyMode::kTempFile) {
    return {.copy_mode = mode, .temp_root = scratch_.path(), .allow_gnu_unique = false};
  }
  ScratchDir scratch_;
};

TEST_F(LoaderTest, CopyIsNamedAfterEnvironmentAndModuleAndRemovedOnUnload) {
  LibraryLoader loader(Options());
  auto library = loader.Load(kModuleDir / "head.so", {"ssr", "head"});
  ASSERT_TRUE(library.ok()) << library.status();
  const fs::path copy = (*library)->loaded_path();
  EXPECT_NE(copy, kModuleDir / "head.so");
  EXPECT_THAT(copy.filename().string(), HasSubstr("ssr#head"));
  EXPECT_TRUE(fs::exists(copy));
  ASSERT_EQ((*library)->descriptors().size(), 1u);
  EXPECT_STREQ((*library)->descriptors()[0]->id, "head");
  library->reset();
  EXPECT_FALSE(fs::exists(copy));
}

TEST_F(LoaderTest, TwoCopiesHaveTheirOwnGlobalsAndInlineStatics) {
  LibraryLoader loader(Options());
  const fs::path probe = kFixtureDir / "unique-hidden" / "unique-probe.so";
  auto first = loader.Load(probe, {"node", "unique-probe"});
  auto second = loader.Load(probe, {"ssr", "unique-probe"});
  ASSERT_TRUE(first.ok() && second.ok()) << first.status() << second.status();
  *ProbeApi(**first).inline_static() = 7;
  *ProbeApi(**first).plain_global() = 9;
  EXPECT_NE(ProbeApi(**first).inline_static(), ProbeApi(**second).inline_static());
  EXPECT_NE(ProbeApi(**first).plain_global(), ProbeApi(**second).plain_global());
  EXPECT_EQ(*ProbeApi(**second).inline_static(), 0);
  EXPECT_EQ(*ProbeApi(**second).plain_global(), 0);
}

TEST_F(LoaderTest, MemfdCopiesAreIndependentToo) {
  LibraryLoader loader(Options(CopyMode::kMemfd));
  const fs::path probe = kFixtureDir / "unique-hidden" / "unique-probe.so";
  auto first = loader.Load(probe, {"node", "unique-probe"});
  auto second = loader.Load(probe, {"ssr", "unique-probe"});
  ASSERT_TRUE(first.ok() && second.ok()) << first.status() << second.status();
  EXPECT_THAT((*first)->loaded_path().string(), HasSubstr("/proc/self/fd/"));
  EXPECT_NE(ProbeApi(**first).inline_static(), ProbeApi(**second).inline_static());
  EXPECT_EQ(CountEntries(scratch_.path()), 0);  // nothing on disk
}

// A topology loads each module file into each of its environments: in a
// batch the file is read, inspected and hashed once, and every load still gets
// its own private copy (its own globals).
TEST_F(LoaderTest, ABatchReadsEachFileOnceAndEveryLoadGetsItsOwnCopy) {
  LibraryLoader loader(Options());
  const fs::path probe = kFixtureDir / "unique-hidden" / "unique-probe.so";
  std::vector<std::shared_ptr<LoadedLibrary>> libraries;
  {
    const LibraryLoader::Batch batch(loader);
    for (const char* env : {"node", "ssr", "edge"}) {
      auto library = loader.Load(probe, {env, "unique-probe"});
      ASSERT_TRUE(library.ok()) << library.status();
      libraries.push_back(*std::move(library));
    }
    EXPECT_EQ(loader.files_read(), 1u);
  }
  std::set<fs::path> copies;
  for (const auto& library : libraries) {
    copies.insert(library->loaded_path());
    EXPECT_EQ(library->content_sha256(), libraries.front()->content_sha256());
  }
  EXPECT_EQ(copies.size(), 3u);
  *ProbeApi(*libraries[0]).plain_global() = 9;
  EXPECT_EQ(*ProbeApi(*libraries[1]).plain_global(), 0);
  // Outside a batch (the last one ended), every load reads the file.
  auto after = loader.Load(probe, {"late", "unique-probe"});
  ASSERT_TRUE(after.ok()) << after.status();
  EXPECT_EQ(loader.files_read(), 2u);
}

// What loads is what the file holds when it is opened: a file replaced (a new
// inode), rewritten with another size, or rewritten in place with its mtime
// put back (only the ctime tells) is read again within the batch.
TEST_F(LoaderTest, ABatchReadsAFileAgainOnceItChanged) {
  ScratchDir modules;
  const fs::path file = modules.path() / "head.so";
  fs::copy_file(kModuleDir / "head.so", file);
  LibraryLoader loader(Options());
  const LibraryLoader::Batch batch(loader);
  std::set<std::string> hashes;
  const auto load = [&](const char* env) {
    auto library = loader.Load(modules.path(), "head.so", {env, "head"});
    EXPECT_TRUE(library.ok()) << library.status();
    if (library.ok()) hashes.insert((*library)->content_sha256());
  };
  const auto read_bytes = [&] {
    std::ifstream in(file, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
  };
  // Rewrites the file in place until its ctime differs from its last one: the
  // file system's timestamps may be as coarse as a clock tick or a second.
  const auto rewrite = [&](const std::string& content) {
    struct stat before {};
    ASSERT_EQ(::stat(file.c_str(), &before), 0);
    struct stat after {};
    do {
      std::ofstream(file, std::ios::binary | std::ios::trunc) << content;
      ASSERT_EQ(::stat(file.c_str(), &after), 0);
    } while (std::tie(after.st_ctim.tv_sec, after.st_ctim.tv_nsec) ==
             std::tie(before.st_ctim.tv_sec, before.st_ctim.tv_nsec));
  };
  load("e0");
  load("e1");
  EXPECT_EQ(loader.files_read(), 1u);

  // Replaced through rename(2): a new inode.
  std::string bytes = read_bytes();
  const std::size_t comment = bytes.find("GCC: (");  // .comment: not loaded, not checked
  ASSERT_NE(comment, std::string::npos);
  bytes[comment] = 'g';
  std::ofstream(modules.path() / "next.so", std::ios::binary) << bytes;
  fs::rename(modules.path() / "next.so", file);
  load("e2");
  EXPECT_EQ(loader.files_read(), 2u);

  // Rewritten in place, one byte longer.
  rewrite(bytes + '\0');
  load("e3");
  EXPECT_EQ(loader.files_read(), 3u);

  // Rewritten in place with the same size, its mtime put back.
  struct stat before {};
  ASSERT_EQ(::stat(file.c_str(), &before), 0);
  bytes[comment] = 'G';
  rewrite(bytes + '\0');
  const timespec times[2] = {before.st_atim, before.st_mtim};
  ASSERT_EQ(::utimensat(AT_FDCWD, file.c_str(), times, 0), 0);
  load("e4");
  EXPECT_EQ(loader.files_read(), 4u);
  EXPECT_EQ(hashes.size(), 4u);  // every version that was read is what loaded
}

// With no private copy, dlopen reads the file itself: nothing to reuse.
TEST_F(LoaderTest, ABatchDoesNotApplyWithoutCopies) {
  LibraryLoader loader(Options(CopyMode::kNone));
  const LibraryLoader::Batch batch(loader);
  for (const char* env : {"node", "ssr"}) {
    ASSERT_TRUE(loader.Load(kModuleDir / "head.so", {env, "head"}).ok());
  }
  EXPECT_EQ(loader.files_read(), 2u);
}

TEST_F(LoaderTest, RefusesLibrariesWithGnuUniqueSymbols) {
  LibraryLoader loader(Options());
  const fs::path leaky = kFixtureDir / "unique-default" / "unique-probe.so";
  EXPECT_FALSE(loader_internal::FindGnuUniqueSymbols(leaky).empty());
  EXPECT_TRUE(loader_internal::FindGnuUniqueSymbols(kModuleDir / "head.so").empty());
  auto library = loader.Load(leaky, {"ssr", "unique-probe"});
  ASSERT_FALSE(library.ok());
  EXPECT_EQ(library.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(library.status().message(), HasSubstr("GNU unique"));
  EXPECT_THAT(library.status().message(), HasSubstr(leaky.string()));
  EXPECT_THAT(library.status().message(), HasSubstr("-fno-gnu-unique"));
}

// Negative control: loaded anyway, the inline static really is shared between
// copies, so the isolation test above would catch a module built without the flags.
TEST_F(LoaderTest, GnuUniqueSymbolsMergeCopiesWhenAllowed) {
  LibraryLoader::Options options = Options();
  options.allow_gnu_unique = true;
  options.allow_interposable_exports = true;  // built without the flags: exports everything
  LibraryLoader loader(options);
  const fs::path leaky = kFixtureDir / "unique-default" / "unique-probe.so";
  auto first = loader.Load(leaky, {"node", "unique-probe"});
  auto second = loader.Load(leaky, {"ssr", "unique-probe"});
  ASSERT_TRUE(first.ok() && second.ok()) << first.status() << second.status();
  EXPECT_EQ(ProbeApi(**first).inline_static(), ProbeApi(**second).inline_static());
  EXPECT_NE(ProbeApi(**first).plain_global(), ProbeApi(**second).plain_global());
}

TEST_F(LoaderTest, MissingLibraryNamesFileEnvironmentAndFix) {
  LibraryLoader loader(Options());
  auto library = loader.Load("/nonexistent/head.so", {"ssr", "head"});
  ASSERT_FALSE(library.ok());
  EXPECT_EQ(library.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(library.status().message(), HasSubstr("/nonexistent/head.so"));
  EXPECT_THAT(library.status().message(), HasSubstr("'ssr'"));
  EXPECT_THAT(library.status().message(), HasSubstr("module roots"));
}

TEST_F(LoaderTest, RejectsAFileThatIsNotASharedLibrary) {
  const fs::path text = scratch_.path() / "notes.so";
  std::ofstream(text) << "not an ELF file\n";
  LibraryLoader loader(Options());
  auto library = loader.Load(text, {"ssr", "notes"});
  ASSERT_FALSE(library.ok());
  EXPECT_THAT(library.status().message(), HasSubstr("not an ELF shared library"));
  EXPECT_THAT(library.status().message(), HasSubstr(text.string()));
}

TEST_F(LoaderTest, RejectsALibraryWithoutDescriptors) {
  LibraryLoader loader(Options());
  auto library = loader.Load(kBadDir / "no-descriptor.so", {"ssr", "no-descriptor"});
  ASSERT_FALSE(library.ok());
  EXPECT_THAT(library.status().message(), HasSubstr("exports no modgraph module descriptor"));
  EXPECT_THAT(library.status().message(), HasSubstr("MODGRAPH_MODULE"));
  EXPECT_EQ(CountEntries(loader.copy_directory()), 0);
}

TEST_F(LoaderTest, RejectsAbiMismatch) {
  LibraryLoader loader(Options());
  auto library = loader.Load(kBadDir / "abi-mismatch.so", {"ssr", "abi-mismatch"});
  ASSERT_FALSE(library.ok());
  EXPECT_THAT(library.status().message(), HasSubstr("module ABI 99"));
  EXPECT_THAT(library.status().message(), HasSubstr("rebuild the module"));
  EXPECT_EQ(CountEntries(loader.copy_directory()), 0);  // the failed copy is gone
}

TEST_F(LoaderTest, RejectsAnAliasNotDerivedFromTheId) {
  LibraryLoader loader(Options());
  auto library = loader.Load(kBadDir / "wrong-alias.so", {"ssr", "wrong-alias"});
  ASSERT_FALSE(library.ok());
  EXPECT_THAT(library.status().message(),
              HasSubstr("must be exported as 'modgraph_module_wrong_alias'"));
}

TEST_F(LoaderTest, RefusesALibraryWritableByOtherUsers) {
  const fs::path copy = scratch_.path() / "head.so";
  fs::copy_file(kModuleDir / "head.so", copy);
  ASSERT_EQ(::chmod(copy.c_str(), 0757), 0);
  LibraryLoader loader(Options());
  auto library = loader.Load(copy, {"ssr", "head"});
  ASSERT_FALSE(library.ok());
  EXPECT_EQ(library.status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(library.status().message(), HasSubstr("chmod go-w " + copy.string()));
  ASSERT_EQ(::chmod(copy.c_str(), 0755), 0);
  EXPECT_TRUE(loader.Load(copy, {"ssr", "head"}).ok());
}

TEST_F(LoaderTest, CopiesAreRemovedAtExitEvenIfNeverUnloaded) {
  int pipe_fds[2];
  ASSERT_EQ(::pipe(pipe_fds), 0);
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    auto* leaked = new LibraryLoader(Options());
    auto library = leaked->Load(kModuleDir / "head.so", {"ssr", "head"});
    new std::shared_ptr<LoadedLibrary>(*library);  // never released
    const std::string dir = leaked->copy_directory().string();
    (void)!::write(pipe_fds[1], dir.data(), dir.size());
    std::exit(library.ok() ? 0 : 3);
  }
  ::close(pipe_fds[1]);
  char buffer[4096];
  const ssize_t n = ::read(pipe_fds[0], buffer, sizeof buffer);
  ::close(pipe_fds[0]);
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  ASSERT_GT(n, 0);
  const fs::path dir(std::string(buffer, static_cast<size_t>(n)));
  EXPECT_THAT(dir.string(), HasSubstr(scratch_.path().string()));
  EXPECT_FALSE(fs::exists(dir));
}

TEST_F(LoaderTest, SweepsCopyDirectoriesOfDeadProcesses) {
  const pid_t child = ::fork();
  if (child == 0) std::_Exit(0);
  ASSERT_EQ(::waitpid(child, nullptr, 0), child);  // now a pid with no process
  const fs::path stale = scratch_.path() / ("modgraph-" + std::to_string(child) + "-abcdef");
  fs::create_directory(stale);
  std::ofstream(stale / "ssr#head.1.so") << "left by a crash";
  LibraryLoader loader(Options());
  ASSERT_TRUE(loader.Load(kModuleDir / "head.so", {"ssr", "head"}).ok());
  EXPECT_FALSE(fs::exists(stale));
}

// A file refused after it was read and inspected is refused the same way
// every time it is loaded in a batch, and leaves no copy behind.
TEST_F(LoaderTest, ABatchRefusesAFailingFileEveryTime) {
  for (const CopyMode mode : {CopyMode::kTempFile, CopyMode::kMemfd}) {
    LibraryLoader loader(Options(mode));
    const LibraryLoader::Batch batch(loader);
    for (const fs::path& bad :
         {kFixtureDir / "unique-default" / "unique-probe.so",
          kFixtureDir / "exports" / "exports-data.so", kBadDir / "own-static-tls.so",
          kBadDir / "no-descriptor.so", kBadDir / "abi-mismatch.so", kBadDir / "wrong-alias.so",
          kBadDir / "bad-id.so", kBadDir / "constant-cell.so"}) {
      auto first = loader.Load(bad, {"node", "bad"});
      auto second = loader.Load(bad, {"ssr", "bad"});
      ASSERT_FALSE(first.ok()) << bad;
      ASSERT_FALSE(second.ok()) << bad;
      EXPECT_EQ(first.status().code(), second.status().code()) << bad;
      EXPECT_THAT(first.status().message(), HasSubstr(bad.string()));
      std::string message(second.status().message());
      if (const std::size_t env = message.find("'ssr'"); env != std::string::npos) {
        message.replace(env, 5, "'node'");
      }
      EXPECT_EQ(message, first.status().message()) << bad;
    }
    if (mode == CopyMode::kTempFile) {
      EXPECT_EQ(CountEntries(loader.copy_directory()), 0);
    }
  }
}

// A file truncated in place to something that is not ELF, inside a batch, is
// refused as such; restored, it loads again.
TEST_F(LoaderTest, ABatchRefusesAFileTruncatedToText) {
  ScratchDir modules;
  const fs::path file = modules.path() / "head.so";
  fs::copy_file(kModuleDir / "head.so", file);
  std::string original;
  {
    std::ifstream in(file, std::ios::binary);
    original.assign(std::istreambuf_iterator<char>(in), {});
  }
  LibraryLoader loader(Options());
  const LibraryLoader::Batch batch(loader);
  ASSERT_TRUE(loader.Load(modules.path(), "head.so", {"e0", "head"}).ok());
  std::ofstream(file, std::ios::binary | std::ios::trunc) << "not an ELF file\n";
  auto text = loader.Load(modules.path(), "head.so", {"e1", "head"});
  ASSERT_FALSE(text.ok());
  EXPECT_THAT(text.status().message(), HasSubstr("not an ELF shared library"));
  std::ofstream(file, std::ios::binary | std::ios::trunc) << original;
  auto back = loader.Load(modules.path(), "head.so", {"e2", "head"});
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(loader.files_read(), 2u);  // the text's header only
}

// A symlink inside the root retargeted during a batch: what loads is the new target.
TEST_F(LoaderTest, ABatchFollowsARetargetedSymlink) {
  ScratchDir modules;
  fs::copy_file(kModuleDir / "head.so", modules.path() / "a.so");
  fs::copy_file(kFixtureDir / "probe" / "head-probe.so", modules.path() / "b.so");
  fs::create_symlink("a.so", modules.path() / "head.so");
  LibraryLoader loader(Options());
  const LibraryLoader::Batch batch(loader);
  auto first = loader.Load(modules.path(), "head.so", {"e0", "head"});
  ASSERT_TRUE(first.ok()) << first.status();
  fs::create_symlink("b.so", modules.path() / "next");
  fs::rename(modules.path() / "next", modules.path() / "head.so");
  auto second = loader.Load(modules.path(), "head.so", {"e1", "head"});
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_NE((*first)->content_sha256(), (*second)->content_sha256());
  EXPECT_EQ(loader.files_read(), 2u);
}

// One inode through two roots (a hard link): read once, each root still checked.
TEST_F(LoaderTest, ABatchChecksEachRootOfAHardLinkedFile) {
  ScratchDir parent;
  const fs::path good = parent.path() / "good";
  const fs::path open = parent.path() / "open";
  fs::create_directories(good);
  fs::create_directories(open);
  fs::copy_file(kModuleDir / "head.so", good / "head.so");
  fs::create_hard_link(good / "head.so", open / "head.so");
  ASSERT_EQ(::chmod(open.c_str(), 0777), 0);
  LibraryLoader loader(Options());
  const LibraryLoader::Batch batch(loader);
  ASSERT_TRUE(loader.Load(good, "head.so", {"e0", "head"}).ok());
  auto refused = loader.Load(open, "head.so", {"e1", "head"});
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kPermissionDenied);
  // Made group-writable after the first load: refused in the batch too.
  ASSERT_EQ(::chmod((good / "head.so").c_str(), 0775), 0);
  auto writable = loader.Load(good, "head.so", {"e2", "head"});
  ASSERT_FALSE(writable.ok());
  EXPECT_EQ(writable.status().code(), absl::StatusCode::kPermissionDenied);
  ASSERT_EQ(::chmod((good / "head.so").c_str(), 0755), 0);
  EXPECT_TRUE(loader.Load(good, "head.so", {"e3", "head"}).ok());
}

// Nested batches keep the bytes until the outermost ends; libraries outlive the batch.
TEST_F(LoaderTest, NestedBatchesAndLibrariesThatOutliveThem) {
  LibraryLoader loader(Options(CopyMode::kMemfd));
  std::vector<std::shared_ptr<LoadedLibrary>> libraries;
  const fs::path probe = kFixtureDir / "unique-hidden" / "unique-probe.so";
  {
    const LibraryLoader::Batch outer(loader);
    {
      const LibraryLoader::Batch inner(loader);
      libraries.push_back(*loader.Load(probe, {"e0", "unique-probe"}));
    }
    libraries.push_back(*loader.Load(probe, {"e1", "unique-probe"}));
    EXPECT_EQ(loader.files_read(), 1u);
  }
  libraries.push_back(*loader.Load(probe, {"e2", "unique-probe"}));
  EXPECT_EQ(loader.files_read(), 2u);
  *ProbeApi(*libraries[0]).plain_global() = 4;
  EXPECT_EQ(*ProbeApi(*libraries[1]).plain_global(), 0);
  EXPECT_EQ(*ProbeApi(*libraries[2]).plain_global(), 0);
}

// Two threads loading in one batch share its bytes safely (memfd copies: the
// temp-file copies' directory and sequence are not synchronised).
// (Also run under the tsan preset: tests/loader/CMakeLists.txt.)
TEST_F(LoaderTest, ABatchSharedByTwoLoadingThreads) {
  for (const CopyMode mode : {CopyMode::kTempFile, CopyMode::kMemfd}) {
    LibraryLoader loader(Options(mode));
    const fs::path probe = kFixtureDir / "unique-hidden" / "unique-probe.so";
    const LibraryLoader::Batch batch(loader);
    std::vector<std::shared_ptr<LoadedLibrary>> loaded[2];
    std::vector<std::thread> threads;
    for (int t = 0; t < 2; ++t) {
      threads.emplace_back([&, t] {
        for (int i = 0; i < 8; ++i) {
          char env[16];
          std::snprintf(env, sizeof env, "e%d", t * 8 + i);
          auto library = loader.Load(probe, {env, "unique-probe"});
          ASSERT_TRUE(library.ok()) << library.status();
          loaded[t].push_back(*std::move(library));
        }
      });
    }
    for (std::thread& thread : threads) thread.join();
    EXPECT_LE(loader.files_read(), 2u);
    std::set<fs::path> copies;
    for (const auto& of_thread : loaded) {
      for (const auto& library : of_thread) copies.insert(library->loaded_path());
    }
    EXPECT_EQ(copies.size(), 16u);  // sixteen loads, sixteen distinct copies
  }
}

// The swap test's hook inside a batch: what loads is what was checked.
TEST_F(LoaderTest, ABatchLoadsCheckedBytesWhenTheFileIsSwappedAfterTheChecks) {
  ScratchDir modules;
  fs::copy_file(kModuleDir / "head.so", modules.path() / "head.so");
  const fs::path other = modules.path() / "other.so";
  LibraryLoader::Options options = Options();
  int swaps = 0;
  options.after_checks_for_test = [&](const fs::path& file) {
    if (++swaps != 2) return;
    fs::copy_file(kFixtureDir / "probe" / "head-probe.so", other);
    fs::rename(other, file);
  };
  LibraryLoader loader(options);
  const LibraryLoader::Batch batch(loader);
  auto first = loader.Load(modules.path(), "head.so", {"e0", "head"});
  auto second = loader.Load(modules.path(), "head.so", {"e1", "head"});
  auto third = loader.Load(modules.path(), "head.so", {"e2", "head"});
  ASSERT_TRUE(first.ok() && second.ok() && third.ok());
  EXPECT_EQ((*first)->content_sha256(), (*second)->content_sha256());
  EXPECT_NE((*second)->content_sha256(), (*third)->content_sha256());
  EXPECT_EQ(loader.files_read(), 2u);
}

}  // namespace
}  // namespace modgraph
