// modgraph/context/code_identity.h — which build of a module a piece of code
// belongs to, for caches whose entries must not outlive the code that made them.
//
// When an environment loads a module library it records the SHA-256 of the
// library's bytes for the loaded copy. Code that receives a function pointer
// from a module (the `cache-runtime` module's use_cache) asks which build it
// comes from and puts the answer in its keys: after a reload of an edited
// module the key changes, so the old build's cached results are never served
// for the new one, while a restart of the same build — or the prod bundle on
// every machine it is deployed to — gets the same identity again.
//
//   std::string key = fmt::format("{}|{}", CodeIdentityOf(reinterpret_cast<const void*>(fn)), arg);
//
// Cost: one _dl_find_object (glibc's lock-free binary search over the loaded
// objects, logarithmic in their number) and a map lookup under a shared lock.
#pragma once

#include <string>

namespace modgraph {

// The hex SHA-256 of the module library whose loaded copy contains `address`,
// or "" when no environment recorded one (host code, a library loaded by other
// means).
std::string CodeIdentityOf(const void* address);

// The start of the mapping of the loaded object containing `address`
// (dladdr's dli_fbase, found as CodeIdentityOf finds it), or null.
const void* LoadBaseOf(const void* address);
}  // namespace modgraph
