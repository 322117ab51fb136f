// Which build a piece of module code belongs to; see code_identity.h.
#include "modgraph/context/code_identity.h"

#include <dlfcn.h>

#include <map>
#include <mutex>
#include <shared_mutex>

#include "modgraph/context/internal/code_identity.h"

namespace modgraph {
namespace {

struct Identities {
  std::shared_mutex mu;
  std::map<const void*, std::string> by_base;
};

Identities& TheIdentities() {
  static auto* identities = new Identities();  // module code may ask during exit
  return *identities;
}

}  // namespace

const void* LoadBaseOf(const void* address) {
  if (address == nullptr) return nullptr;
  // glibc's _dl_find_object: a binary search in a lock-free table; dladdr would
  // walk every loaded object under the loader lock (quadratic over thousands
  // of module copies).
  dl_find_object found{};
  if (::_dl_find_object(const_cast<void*>(address), &found) != 0) return nullptr;
  return found.dlfo_map_start;
}

std::string CodeIdentityOf(const void* address) {
  const void* base = LoadBaseOf(address);
  if (base == nullptr) return {};
  Identities& identities = TheIdentities();
  std::shared_lock lock(identities.mu);
  auto it = identities.by_base.find(base);
  return it == identities.by_base.end() ? std::string() : it->second;
}

namespace context_internal {

void RecordCodeIdentity(const void* base, std::string identity) {
  Identities& identities = TheIdentities();
  std::unique_lock lock(identities.mu);
  identities.by_base.insert_or_assign(base, std::move(identity));
}

void ForgetCodeIdentity(const void* base) {
  Identities& identities = TheIdentities();
  std::unique_lock lock(identities.mu);
  identities.by_base.erase(base);
}

}  // namespace context_internal
}  // namespace modgraph
