// i18n.h — the `i18n` module's interface: the locale of the current request and
// message lookup, as Fluenti's createServerI18n gives them.
//
// `with_locale(locale, fn)` runs fn with that locale; `set_locale` changes it.
// Both go through slots. The module-level defaults use one fallback store shared
// by every request — fine for a dev server serving one request at a time, wrong
// under load (a lock inside `i18n` keeps it memory-safe on several threads; it
// does not keep requests apart). `i18n-state` registers accessors backed by the request context:
// inside the unified request scope each request has its own locale, and
// `with_locale` runs fn in a child context holding its own locale store
// (replace, not mutate: the request's locale is never written by it).
// Compiled messages are module-level on purpose: shared, loaded once.
#ifndef MODGRAPH_MODULES_I18N_H_
#define MODGRAPH_MODULES_I18N_H_

#include <string>
#include <string_view>

#include "modgraph/loader/sdk.h"
#include "modgraph/registry/slot.h"

namespace modgraph::modules {

struct LocaleStore {
  std::string locale;
};

MODGRAPH_DEFINE_SLOT(GetLocaleStore, "get_locale_store", modgraph::modules::LocaleStore*());
MODGRAPH_DEFINE_SLOT(RunWithLocale, "run_with_locale",
                     void(const char* locale, void (*fn)(void*), void* arg));

struct I18nApi {
  void (*set_locale)(std::string_view locale);
  // The current locale, or the fallback locale "en" when none was set.
  std::string (*locale)();
  // The message `key` in the current locale (e.g. "greeting" → "Bonjour").
  std::string (*translate)(std::string_view key);
  // Runs fn(arg) with `locale` current (Fluenti's withLocale).
  void (*with_locale)(const char* locale, void (*fn)(void*), void* arg);
  // Diagnostics: this instance's module-level state.
  LocaleStore* (*fallback_store)();
};

// Calls `fn` with `locale` current through `api.with_locale`.
template <class F>
void WithLocale(const I18nApi& api, const char* locale, F&& fn) {
  api.with_locale(
      locale, [](void* arg) { (*static_cast<std::remove_reference_t<F>*>(arg))(); }, &fn);
}

}  // namespace modgraph::modules

#endif  // MODGRAPH_MODULES_I18N_H_
