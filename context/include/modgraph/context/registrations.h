// modgraph/context/registrations.h — who registered which named key and state
// kind, and how a registration that clashes becomes a load error instead of an
// exception thrown out of a static initialiser.
//
// Keys (context.h) and state kinds (request_context.h) are registered by name in
// modgraph_core when their objects are constructed — usually at namespace scope,
// that is inside dlopen for a module copy. An exception there cannot be caught by
// anyone: it ends the process. So while a RegistrationScope is open on the
// loading thread, a registration that cannot be honoured (the name is taken with
// another type, the indices ran out, an empty state kind name) is *refused*: it
// gets the reserved index 0, its error is added to the scope, and the loader
// turns the scope's errors into a load error naming both types and both modules.
// Outside any scope (host code) such a registration still throws
// std::logic_error with the same message.
//
//   modgraph::RegistrationScope scope("ssr#head ('/app/modules/head.so')");
//   auto library = loader.Load(file, request);         // static initialisers run here
//   if (!scope.errors().empty()) return LoadError(scope.errors());
//
// Every registration is recorded with the object file whose code made it (found
// with dladdr), so reports can say which copies declared what:
//
//   for (const NamedRegistration& r : ListNamedRegistrations())
//     if (r.name.empty() && r.live) ...  // an anonymous key, by r.registrant
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace modgraph {

// One construction of a Key or StateKind.
struct NamedRegistration {
  std::string registry;  // "key" or "state kind"
  std::string name;      // empty for an anonymous key
  std::uint32_t index = 0;
  std::string type;  // the value type, demangled
  std::size_t size = 0;
  std::size_t align = 0;
  // Who registered: the RegistrationScope's registrant (e.g. "ssr#head
  // ('/app/modules/head.so')") when one was open, else `object`.
  std::string registrant;
  // The object file holding the code that constructed the key (dladdr), e.g.
  // the module's private copy "/dev/shm/modgraph-42-x/ssr#head.3.so".
  std::string object;
  // Refused (see above): the registration got the reserved index 0.
  bool refused = false;
  std::string error;  // why it was refused
  // The registering object is still mapped (evaluated when listed).
  bool live = false;
};

// Every registration recorded so far, in registration order. Records of
// objects that are no longer mapped are listed (live = false) until pruned.
std::vector<NamedRegistration> ListNamedRegistrations();

// While alive, registrations made on this thread are attributed to `registrant`
// and refused rather than thrown. Scopes nest; the innermost one counts.
class RegistrationScope {
 public:
  explicit RegistrationScope(std::string registrant);
  ~RegistrationScope();
  RegistrationScope(const RegistrationScope&) = delete;
  RegistrationScope& operator=(const RegistrationScope&) = delete;

  const std::string& registrant() const noexcept { return registrant_; }
  // One message per refused registration, naming both types and registrants.
  const std::vector<std::string>& errors() const noexcept { return errors_; }

 private:
  friend struct RegistrationScopeAccess;
  std::string registrant_;
  std::vector<std::string> errors_;
  RegistrationScope* outer_;
};

}  // namespace modgraph
