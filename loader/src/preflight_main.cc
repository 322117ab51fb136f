// modgraph-preflight <library>: loads one module library and exits, so that a
// host learns whether the library's static initialisers throw, abort or crash
// without running them itself first (preflight.h). Output: nothing and exit 0
// when the library loads; otherwise why, on stderr, and a non-zero exit or the
// signal that ended the process.
#include <cxxabi.h>
#include <dlfcn.h>

#include <cstdio>
#include <cstdlib>
#include <exception>
#include <typeinfo>

#include "modgraph/context/request_context.h"

namespace {

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

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: modgraph-preflight <module library>\n");
    return 2;
  }
  // Load the core as every host does (linked, its context anchor in the static
  // TLS block): a module finds it already loaded, wherever its copy lives. This
  // use keeps the linker from dropping the dependency (--as-needed).
  if (modgraph::in_request_scope()) return 4;
  std::set_terminate(&OnTerminate);
  if (::dlopen(argv[1], RTLD_NOW | RTLD_LOCAL) == nullptr) {
    std::fprintf(stderr, "dlopen failed: %s\n", ::dlerror());
    return 3;
  }
  // Skip static destructors and atexit handlers: only initialisation is tested.
  std::fflush(stdout);
  std::_Exit(0);
}
