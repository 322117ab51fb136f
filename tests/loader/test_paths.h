// Paths of the libraries the loader suites load, and a scratch directory.
#ifndef MODGRAPH_TESTS_LOADER_TEST_PATHS_H_
#define MODGRAPH_TESTS_LOADER_TEST_PATHS_H_

#include <stdlib.h>

#include <filesystem>
#include <ostream>
#include <string>

#include "absl/strings/string_view.h"

// Debian's abseil has its own string_view; print it as text in failure messages.
namespace absl {
inline void PrintTo(absl::string_view text, std::ostream* os) {
  *os << '"' << std::string(text) << '"';
}
}  // namespace absl

namespace modgraph::testing {

inline const std::filesystem::path kModuleDir = MODGRAPH_TEST_MODULE_DIR;
inline const std::filesystem::path kBundle = MODGRAPH_TEST_BUNDLE;
inline const std::filesystem::path kFixtureDir = MODGRAPH_TEST_FIXTURE_DIR;
inline const std::filesystem::path kProbeDir = kFixtureDir / "probe";
inline const std::filesystem::path kBadDir = kFixtureDir / "bad";
inline const std::filesystem::path kProbeBundle = kFixtureDir / "probe-bundle" / "probe-bundle.so";
// Inputs that once crashed a fuzz target (tests/fuzz/regressions/{elf,topology}).
inline const std::filesystem::path kFuzzRegressions = MODGRAPH_TEST_FUZZ_REGRESSIONS;

// A fresh directory removed when the test ends.
class ScratchDir {
 public:
  ScratchDir() {
    std::string pattern =
        (std::filesystem::temp_directory_path() / "modgraph-test-XXXXXX").string();
    path_ = ::mkdtemp(pattern.data());
  }
  ~ScratchDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

// Number of entries in a directory (0 if it does not exist).
inline int CountEntries(const std::filesystem::path& dir) {
  std::error_code ec;
  int n = 0;
  for (auto it = std::filesystem::directory_iterator(dir, ec);
       !ec && it != std::filesystem::directory_iterator(); ++it) {
    ++n;
  }
  return n;
}

}  // namespace modgraph::testing

#endif  // MODGRAPH_TESTS_LOADER_TEST_PATHS_H_
