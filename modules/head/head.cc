// The `head` module: module-level state plus a slot for context-backed access.
#include "modgraph/modules/head.h"

#include <atomic>
#include <numeric>

namespace modgraph::modules {
namespace {

// Module-level state: one per instance, shared by every request on it.
std::vector<std::string> g_ssr_head_children;

std::vector<std::string>* DefaultGetSsrHeadChildren() { return &g_ssr_head_children; }

Slot<GetSsrHeadChildren> g_get_ssr_head_children{&DefaultGetSsrHeadChildren};

// A static inside an inline function: with default visibility GCC makes it a GNU
// unique symbol that every copy of the library would share. Atomic: requests on
// several threads count through it.
inline std::atomic<int>& InlineStaticCounter() {
  static std::atomic<int> counter{0};
  return counter;
}

void AddChild(std::string_view html) {
  InlineStaticCounter().fetch_add(1, std::memory_order_relaxed);
  g_get_ssr_head_children()->emplace_back(html);
}

std::string Render() {
  const std::vector<std::string>& children = *g_get_ssr_head_children();
  return std::accumulate(children.begin(), children.end(), std::string());
}

void Reset() { g_get_ssr_head_children()->clear(); }

std::vector<std::string>* ModuleChildren() { return &g_ssr_head_children; }
std::atomic<int>* InlineStaticCounterAddress() { return &InlineStaticCounter(); }

const HeadApi kHeadApi{&AddChild, &Render, &Reset, &ModuleChildren, &InlineStaticCounterAddress};
const modgraph_slot_decl kSlots[] = {g_get_ssr_head_children.decl()};
const modgraph_shared_state_decl kShared[] = {MODGRAPH_SHARED_STATE(
    InlineStaticCounter(),
    "counts add_child calls across all requests (a diagnostic of the GNU-unique trap); atomic, "
    "and no request reads it")};

}  // namespace
}  // namespace modgraph::modules

MODGRAPH_MODULE(head, {.id = "head",
                       .slots = modgraph::modules::kSlots,
                       .api = &modgraph::modules::kHeadApi,
                       .teardown = &::modgraph::sdk::nothing_to_stop,
                       .shared_state = modgraph::modules::kShared});
