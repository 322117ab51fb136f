// The read loop measured both in the host and in a dlopen'd module, so the two
// figures differ only in how the module reaches the thread-local anchor.
#pragma once

#include <cstdint>

#include "modgraph/context/context.h"

namespace modgraph::bench {

inline constexpr std::int64_t kReadsPerCall = 1000;

// Reads `key` kReadsPerCall times. The empty asm with a memory clobber tells the
// compiler that any memory, the anchor included, may have changed, so every
// iteration reloads the anchor instead of hoisting one read out of the loop.
inline std::int64_t read_loop(const Key<std::int64_t>& key) {
  std::int64_t sum = 0;
  for (std::int64_t i = 0; i < kReadsPerCall; ++i) {
    asm volatile("" ::: "memory");
    const std::int64_t* value = get(key);
    sum += value != nullptr ? *value : 0;
  }
  return sum;
}

// One read per call: one non-inlined read function.
using ReadFn = std::int64_t (*)(const Key<std::int64_t>&);

// Calls `fn` kReadsPerCall times through a pointer the compiler cannot see
// through, so every read is a real call. Built into the host and into the
// module, so that caller and callee sit in the same object in both figures.
[[gnu::noinline]] inline std::int64_t call_loop(ReadFn fn, const Key<std::int64_t>& key) {
  std::int64_t sum = 0;
  for (std::int64_t i = 0; i < kReadsPerCall; ++i) {
    asm volatile("" : "+r"(fn)::"memory");
    sum += fn(key);
  }
  return sum;
}

}  // namespace modgraph::bench
