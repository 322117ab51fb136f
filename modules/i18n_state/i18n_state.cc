// The `i18n-state` module: request-context-backed locale accessors for `i18n`.
#include "modgraph/context/request_context.h"
#include "modgraph/modules/i18n.h"
#include "modgraph/registry/provider.h"

namespace modgraph::modules {
namespace {

const StateKind<LocaleStore> kLocaleState{"i18n"};
const I18nApi* g_i18n = nullptr;

// The locale store of one with_locale scope, owned by the scope's context.
// set_locale inside the scope changes this store only.
struct ScopedLocale {
  mutable LocaleStore store;
};
const Key<ScopedLocale> kWithLocale{"i18n.with_locale"};

// The innermost with_locale scope, then the unified scope, then the fallback
// (start-up code, or work that lost its request's context: reported by
// provider_state).
LocaleStore* RequestLocaleStore() {
  if (const ScopedLocale* scoped = get(kWithLocale)) return &scoped->store;
  if (LocaleStore* store = provider_state<GetLocaleStore>(kLocaleState)) return store;
  return g_i18n->fallback_store();
}

// Replace, not mutate: fn runs in a child of the current context that holds
// its own store, inside a request or outside one. The request's store is never
// written, so two branches of one request (two threads, two coroutines) each
// see their own locale and the request's locale is unchanged afterwards.
void RequestRunWithLocale(const char* locale, void (*fn)(void*), void* arg) {
  run(with(kWithLocale, ScopedLocale{LocaleStore{locale}}), [&] { fn(arg); });
}

void Init(sdk::ModuleContext& context) {
  g_i18n = &context.import_module<I18nApi>("i18n");
  context.register_accessor<GetLocaleStore>("i18n", &RequestLocaleStore);
  context.register_accessor<RunWithLocale>("i18n", &RequestRunWithLocale);
}

const char* const kImports[] = {"i18n"};
const char* const kProvidesFor[] = {"i18n"};

}  // namespace
}  // namespace modgraph::modules

MODGRAPH_MODULE(i18n_state, {.id = "i18n-state",
                             .imports = modgraph::modules::kImports,
                             .provides_for = modgraph::modules::kProvidesFor,
                             .init = &modgraph::modules::Init,
                             .teardown = &::modgraph::sdk::nothing_to_stop});
