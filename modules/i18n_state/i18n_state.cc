// The `i18n-state` module: request-context-backed locale accessors for `i18n`.
#include "modgraph/context/request_context.h"
#include "modgraph/modules/i18n.h"
#include "modgraph/registry/provider.h"

namespace modgraph::modules {
namespace {

const StateKind<LocaleStore> kLocaleState{"i18n"};
const I18nApi* g_i18n = nullptr;

// Unified scope first, then a standalone with_locale scope, then the fallback
// (start-up code, or work that lost its request's context: reported by
// provider_state).
LocaleStore* RequestLocaleStore() {
  if (LocaleStore* store = provider_state<GetLocaleStore>(kLocaleState)) return store;
  return g_i18n->fallback_store();
}

void RequestRunWithLocale(const char* locale, void (*fn)(void*), void* arg) {
  if (in_request_scope()) {
    // Inside the unified scope the request's own store is isolated already.
    struct Restore {
      LocaleStore* store;
      std::string previous;
      ~Restore() { store->locale = std::move(previous); }
    };
    LocaleStore* store = kLocaleState.get();
    Restore restore{store, std::exchange(store->locale, locale)};
    fn(arg);
    return;
  }
  LocaleStore scoped{locale};
  kLocaleState.run_standalone(scoped, [&] { fn(arg); });
}

void Init(sdk::ModuleContext& context) {
  g_i18n = &context.import <I18nApi>("i18n");
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
