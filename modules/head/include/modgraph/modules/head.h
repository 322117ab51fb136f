// head.h — the `head` module's interface: collects the elements a page puts in
// the document <head> (title, meta). Shared by `head` and the modules that import it.
//
// The collected children live behind the slot `get_ssr_head_children`. Its
// module-level default returns one vector shared by every request; the provider
// `head-state` registers a request-context-backed accessor so each request gets
// its own. An instance nobody registered on leaks one request's <title> into
// another's page: the bug modgraph exists to find.
#ifndef MODGRAPH_MODULES_HEAD_H_
#define MODGRAPH_MODULES_HEAD_H_

#include <atomic>
#include <string>
#include <string_view>
#include <vector>

#include "modgraph/loader/sdk.h"
#include "modgraph/registry/slot.h"

namespace modgraph::modules {

MODGRAPH_DEFINE_SLOT(GetSsrHeadChildren, "get_ssr_head_children", std::vector<std::string>*());

struct HeadApi {
  // Adds one element (e.g. "<title>req-3</title>") to the current head.
  void (*add_child)(std::string_view html);
  // The current head's elements, joined; does not clear them.
  std::string (*render)();
  // Clears the current head.
  void (*reset)();
  // Diagnostics: this instance's module-level state (the module-level default accessor's
  // vector; requests change it under head's lock, so read it only while none
  // runs), and a static inside an inline function (the GNU-unique trap).
  std::vector<std::string>* (*module_children)();
  std::atomic<int>* (*inline_static_counter)();
};

}  // namespace modgraph::modules

#endif  // MODGRAPH_MODULES_HEAD_H_
