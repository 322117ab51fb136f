// modgraph/context/internal/code_identity.h — how environments feed
// CodeIdentityOf (code_identity.h): the identity of each library they load,
// recorded at its load base and forgotten before it is closed. Internal to
// modgraph; hosts and modules only read identities.
//
//   context_internal::RecordCodeIdentity(LoadBaseOf(symbol), Sha256Of(path));
#pragma once

#include <string>

namespace modgraph {

namespace context_internal {
// Recorded by environments for each library they load; `base` is its load
// address (LoadBaseOf). Forget before the library is closed: another
// library may be mapped at the same address later.
void RecordCodeIdentity(const void* base, std::string identity);
void ForgetCodeIdentity(const void* base);
}  // namespace context_internal

}  // namespace modgraph
