// Fuzz target: parsing a topology file. Any text must give a spec or an error
// naming file:line:column — never an exception, a crash or undefined behaviour.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "modgraph/environments/topology.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  (void)modgraph::ParseTopology(text, "fuzz.toml", "/nonexistent/base");
  return 0;
}
