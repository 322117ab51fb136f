// Runs the GoogleTest suites compiled into this shared library (the context
// suites built with MODGRAPH_CONTEXT_DYNAMIC_TLS; see CMakeLists.txt). GoogleTest
// is linked into the library, so its registry is the library's.
#include "gmock/gmock.h"

extern "C" __attribute__((visibility("default"))) int modgraph_run_context_suites(int argc,
                                                                                  char** argv) {
  testing::InitGoogleMock(&argc, argv);
  return RUN_ALL_TESTS();
}
