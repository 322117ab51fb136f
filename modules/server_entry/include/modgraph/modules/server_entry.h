// server_entry.h — the `server-entry` module's interface: the dev server's own
// entry point, which lives in the `node` environment.
//
// Like the original dev server, it imports `head-state` and `router-state`,
// so their accessors get registered on *its* environment's `head` and `router`
// — not on the instances in `ssr` where pages render. That is the bug this
// project exists to find; the `auto` policy fixes it by loading the providers
// in `ssr` too.
#ifndef MODGRAPH_MODULES_SERVER_ENTRY_H_
#define MODGRAPH_MODULES_SERVER_ENTRY_H_

#include <string>
#include <string_view>

namespace modgraph::modules {

struct ServerEntryApi {
  // The HTML document around a rendered page.
  std::string (*document)(std::string_view head_html, std::string_view body_html);
};

}  // namespace modgraph::modules

#endif  // MODGRAPH_MODULES_SERVER_ENTRY_H_
