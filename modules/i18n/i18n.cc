// The `i18n` module: locale behind slots, with a module-level state.
#include "modgraph/modules/i18n.h"

#include <map>
#include <mutex>
#include <utility>

namespace modgraph::modules {
namespace {

constexpr std::string_view kFallbackLocale = "en";

LocaleStore g_fallback_store;  // module-level: shared by every request on this instance
// Guards g_fallback_store: without a provider, requests on several io threads
// share it. Memory-safe, still shared — a request can see another's locale.
std::mutex g_fallback_store_mutex;

LocaleStore* DefaultGetLocaleStore() { return &g_fallback_store; }

// Without a request-aware provider, "with locale" can only overwrite the shared
// store for the duration of fn — exactly what leaks under concurrency. The lock
// is held for the swaps, not across fn (which reads the locale itself).
void DefaultRunWithLocale(const char* locale, void (*fn)(void*), void* arg) {
  struct Restore {
    std::string previous;
    ~Restore() {
      std::lock_guard lock(g_fallback_store_mutex);
      g_fallback_store.locale = std::move(previous);
    }
  } restore{[&] {
    std::lock_guard lock(g_fallback_store_mutex);
    return std::exchange(g_fallback_store.locale, locale);
  }()};
  fn(arg);
}

Slot<GetLocaleStore> g_get_locale_store{&DefaultGetLocaleStore};
Slot<RunWithLocale> g_run_with_locale{&DefaultRunWithLocale};

// Compiled messages: module-level and shared on purpose.
const std::map<std::string, std::map<std::string, std::string>, std::less<>> kMessages = {
    {"greeting", {{"en", "Hello"}, {"fr", "Bonjour"}, {"ja", "こんにちは"}}},
    {"farewell", {{"en", "Goodbye"}, {"fr", "Au revoir"}, {"ja", "さようなら"}}},
};

// Runs `fn` on the current store: a request's own (registered provider) as is,
// the module-level one under its lock.
template <class F>
decltype(auto) WithStore(F&& fn) {
  LocaleStore* store = g_get_locale_store();
  if (store == &g_fallback_store) {
    std::lock_guard lock(g_fallback_store_mutex);
    return fn(*store);
  }
  return fn(*store);
}

void SetLocale(std::string_view locale) {
  WithStore([&](LocaleStore& store) { store.locale = locale; });
}

std::string Locale() {
  return WithStore([](const LocaleStore& store) {
    return store.locale.empty() ? std::string(kFallbackLocale) : store.locale;
  });
}

std::string Translate(std::string_view key) {
  auto message = kMessages.find(key);
  if (message == kMessages.end()) return std::string(key);
  const std::string locale = Locale();
  auto text = message->second.find(locale);
  if (text == message->second.end()) text = message->second.find(std::string(kFallbackLocale));
  return text->second;
}

void WithLocaleThunk(const char* locale, void (*fn)(void*), void* arg) {
  g_run_with_locale(locale, fn, arg);
}

LocaleStore* FallbackStore() { return &g_fallback_store; }

const I18nApi kI18nApi{&SetLocale, &Locale, &Translate, &WithLocaleThunk, &FallbackStore};
const modgraph_slot_decl kSlots[] = {g_get_locale_store.decl(), g_run_with_locale.decl()};
const modgraph_shared_state_decl kShared[] = {MODGRAPH_SHARED_STATE(
    g_fallback_store_mutex, "guards g_fallback_store across io threads; holds no request data")};

}  // namespace
}  // namespace modgraph::modules

MODGRAPH_MODULE(i18n, {.id = "i18n",
                       .slots = modgraph::modules::kSlots,
                       .api = &modgraph::modules::kI18nApi,
                       .teardown = &::modgraph::sdk::nothing_to_stop,
                       .shared_state = modgraph::modules::kShared});
