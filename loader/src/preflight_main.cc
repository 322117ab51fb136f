// modgraph-preflight <library>: loads one module library the way a host does,
// follows its module descriptors, unloads it and exits, so that a host learns
// whether the library's static initialisers, descriptors or finalisers throw,
// abort, crash or end the process without running them itself first
// (preflight.h). Progress goes to descriptor 3, one word per stage passed:
// "loaded" (dlopen returned and every descriptor checked), "closed" (dlclose
// returned); the parent requires both and exit status 0. Why a stage failed
// goes to stderr.
#include <cxxabi.h>
#include <dlfcn.h>
#include <link.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <fstream>
#include <iterator>
#include <string>
#include <typeinfo>

#include "modgraph/context/request_context.h"
#include "modgraph/loader/internal/descriptor_check.h"
#include "modgraph/loader/internal/elf.h"

namespace {

constexpr int kProgressFd = 3;

[[noreturn]] void OnTerminate() {
  const std::type_info* type = abi::__cxa_current_exception_type();
  if (type != nullptr) {
    int status = 0;
    char* name = abi::__cxa_demangle(type->name(), nullptr, nullptr, &status);
    const char* what = "";
    try {
      std::rethrow_exception(std::current_exception());
    } catch (const std::exception& error) {
      what = error.what();
    } catch (...) {
    }
    std::fprintf(stderr, "uncaught %s thrown during static initialisation%s%s\n",
                 status == 0 ? name : type->name(), *what != '\0' ? ": " : "", what);
  } else {
    std::fprintf(stderr, "std::terminate called during static initialisation\n");
  }
  std::fflush(stderr);
  std::abort();
}

void Progress(const char* stage) {
  const std::size_t size = std::strlen(stage);
  if (::write(kProgressFd, stage, size) != static_cast<ssize_t>(size)) std::_Exit(6);
}

int ThreadCount() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.starts_with("Threads:")) return std::atoi(line.c_str() + 8);
  }
  return 1;
}

// Follows every descriptor as LibraryLoader::Load does; 0 when all are sound.
int CheckDescriptors(const char* path, void* handle) {
  std::ifstream in(path, std::ios::binary);
  const std::string bytes{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
  const absl::StatusOr<modgraph::elf::SharedObject> so = modgraph::elf::InspectSharedObject(bytes);
  if (!so.ok()) {
    std::fprintf(stderr, "%s\n", std::string(so.status().message()).c_str());
    return 5;
  }
  link_map* map = nullptr;
  if (::dlinfo(handle, RTLD_DI_LINKMAP, &map) != 0 || map == nullptr) return 5;
  const modgraph::loader_internal::LoadedImage image(map->l_addr, *so);
  for (const modgraph::elf::DynamicSymbol& symbol : so->exports) {
    if (!modgraph::loader_internal::IsDescriptorAlias(symbol)) continue;
    absl::StatusOr<const modgraph_module_descriptor*> descriptor =
        modgraph::loader_internal::LocateDescriptor(image, ::dlsym(handle, symbol.name.c_str()));
    absl::Status checked = descriptor.status();
    // Another ABI is refused by the host before it reads further.
    if (checked.ok() && (*descriptor)->abi_version == MODGRAPH_ABI_VERSION) {
      checked = modgraph::loader_internal::CheckDescriptorPointers(image, **descriptor);
    }
    if (!checked.ok()) {
      std::fprintf(stderr, "%s: %s\n", symbol.name.c_str(), std::string(checked.message()).c_str());
      return 5;
    }
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: modgraph-preflight <module library> (progress on fd 3)\n");
    return 2;
  }
  // Load the core as every host does (linked, its context anchor in the static
  // TLS block): a module finds it already loaded, wherever its copy lives. This
  // use keeps the linker from dropping the dependency (--as-needed).
  if (modgraph::in_request_scope()) return 4;
  std::set_terminate(&OnTerminate);
  void* handle = ::dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
  if (handle == nullptr) {
    std::fprintf(stderr, "dlopen failed: %s\n", ::dlerror());
    return 3;
  }
  if (const int failed = CheckDescriptors(argv[1], handle); failed != 0) return failed;
  Progress("loaded\n");
  // A thread the library started may still run its code: a host keeps such a
  // copy mapped (docs/loader.md, "Retirement"), and so does this process.
  if (ThreadCount() > 1) {
    Progress("closed\n");
    std::_Exit(0);
  }
  // Unload as a host does when a copy retires (DT_FINI, fini arrays, static
  // destructors), then exit normally: handlers registered with atexit run too.
  if (::dlclose(handle) != 0) {
    std::fprintf(stderr, "dlclose failed: %s\n", ::dlerror());
    return 7;
  }
  Progress("closed\n");
  std::fflush(stdout);
  return 0;
}
