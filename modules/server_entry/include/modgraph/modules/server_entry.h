// server_entry.h — the `server-entry` module's interface: the dev server's own
// entry point, which lives in the `node` environment.
//
// Like the original dev server, it imports `head-state` and `router-state`,
// so their accessors get registered on *its* environment's `head` and `router`
// — not on the instances in `ssr` where pages render. That is the bug this
// project exists to find; the `auto` policy fixes it by loading the providers
// in `ssr` too.
//
// Its API is the page layer's document contract: a topology names it as
// `[server] document = "server-entry"` and the page host wraps every page in
// the document it returns.
//
//   const auto& entry = context.import_module<modules::ServerEntryApi>("server-entry");
//   std::string html = entry.document("<title>t</title>", "<h1>hi</h1>");
#ifndef MODGRAPH_MODULES_SERVER_ENTRY_H_
#define MODGRAPH_MODULES_SERVER_ENTRY_H_

#include "modgraph/pages/page.h"

namespace modgraph::modules {

using ServerEntryApi = pages::DocumentApi;

}  // namespace modgraph::modules

#endif  // MODGRAPH_MODULES_SERVER_ENTRY_H_
