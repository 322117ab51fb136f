// The `head` module: module-level state plus a slot for context-backed access.
#include "modgraph/modules/head.h"

#include <atomic>
#include <mutex>

namespace modgraph::modules {
namespace {

// Module-level state: one per instance, shared by every request on it.
std::vector<std::string> g_ssr_head_children;
// Guards g_ssr_head_children. Without a provider every request on this instance
// uses that one vector, and with several io threads they use it at the same
// time: the lock keeps the vector memory-safe, not per request — one request's
// <title> still shows up in another's page (the cross-request leak the sentinel
// reports), it just never corrupts the heap.
std::mutex g_ssr_head_children_mutex;

std::vector<std::string>* DefaultGetSsrHeadChildren() { return &g_ssr_head_children; }

Slot<GetSsrHeadChildren> g_get_ssr_head_children{&DefaultGetSsrHeadChildren};

// A static inside an inline function: with default visibility GCC makes it a GNU
// unique symbol that every copy of the library would share. Atomic: requests on
// several threads count through it.
inline std::atomic<int>& InlineStaticCounter() {
  static std::atomic<int> counter{0};
  return counter;
}

// Runs `fn` on the current head's children: a request's own list when a
// provider registered one (only that request touches it), else the module-level
// list under its lock. A registered accessor may hand out the module-level list
// too (outside any request), hence the address check rather than is_default().
template <class F>
decltype(auto) WithChildren(F&& fn) {
  std::vector<std::string>* children = g_get_ssr_head_children();
  if (children == &g_ssr_head_children) {
    std::lock_guard lock(g_ssr_head_children_mutex);
    return fn(*children);
  }
  return fn(*children);
}

void AddChild(std::string_view html) {
  InlineStaticCounter().fetch_add(1, std::memory_order_relaxed);
  WithChildren([&](std::vector<std::string>& children) { children.emplace_back(html); });
}

std::string Render() {
  return WithChildren([](const std::vector<std::string>& children) {
    std::size_t size = 0;
    for (const std::string& child : children) size += child.size();
    std::string html;
    html.reserve(size);  // one allocation for the whole head
    for (const std::string& child : children) html += child;
    return html;
  });
}

void Reset() {
  WithChildren([](std::vector<std::string>& children) { children.clear(); });
}

std::vector<std::string>* ModuleChildren() { return &g_ssr_head_children; }
std::atomic<int>* InlineStaticCounterAddress() { return &InlineStaticCounter(); }

const HeadApi kHeadApi{&AddChild, &Render, &Reset, &ModuleChildren, &InlineStaticCounterAddress};
const modgraph_slot_decl kSlots[] = {g_get_ssr_head_children.decl()};
const modgraph_shared_state_decl kShared[] = {
    MODGRAPH_SHARED_STATE(
        InlineStaticCounter(),
        "counts add_child calls across all requests (a diagnostic of the GNU-unique trap); "
        "atomic, and no request reads it"),
    MODGRAPH_SHARED_STATE(g_ssr_head_children_mutex,
                          "guards g_ssr_head_children across io threads; holds no request data")};

}  // namespace
}  // namespace modgraph::modules

MODGRAPH_MODULE(head, {.id = "head",
                       .slots = modgraph::modules::kSlots,
                       .api = &modgraph::modules::kHeadApi,
                       .teardown = &::modgraph::sdk::nothing_to_stop,
                       .shared_state = modgraph::modules::kShared});
