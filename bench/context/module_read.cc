// A tiny module built like modgraph modules (PIC, hidden visibility, dlopen'd)
// that reads the core's anchor: a loop of reads, or one read per call (called
// from a loop in the module, or from the host).
#include "read_loop.h"

extern "C" __attribute__((visibility("default"))) std::int64_t modgraph_bench_read_loop(
    const modgraph::Key<std::int64_t>& key) {
  return modgraph::bench::read_loop(key);
}

extern "C" __attribute__((visibility("default"), noinline)) std::int64_t modgraph_bench_read_once(
    const modgraph::Key<std::int64_t>& key) {
  const std::int64_t* value = modgraph::get(key);
  return value != nullptr ? *value : 0;
}

// One read per call, the calls made from inside the module.
extern "C" __attribute__((visibility("default"))) std::int64_t modgraph_bench_call_loop(
    const modgraph::Key<std::int64_t>& key) {
  return modgraph::bench::call_loop(modgraph_bench_read_once, key);
}
