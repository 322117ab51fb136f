// modgraph/context/request_store.h — a per-request, type-safe key→value store
// for application code (per-request database clients, caches, flags).
//
// Inside a unified request scope, request_store() returns that request's store:
// every caller in the request, on any thread the request's work runs on, sees
// the same entries, and they are destroyed with the request context. Outside any
// request it returns a fresh empty store on every call, so nothing written there
// can leak to another caller.
//
//   std::shared_ptr<DbClient> db() {
//     return modgraph::request_store().get_or_create<DbClient>(
//         "db", [] { return std::make_shared<DbClient>(kConnectionString); });
//   }
//
// Entries are checked by type name, so module copies agree on them; reading an
// entry as a different type throws std::logic_error naming the entry and both
// types. Like state kinds, an entry's deleter belongs to the code that set it.
#pragma once

#include <cstddef>
#include <memory>
#include <string_view>
#include <type_traits>
#include <typeinfo>
#include <utility>

#include "modgraph/context/context.h"

namespace modgraph {

// A handle to one store; copies share the entries. Thread-safe.
class RequestStore {
 public:
  // A new, empty store.
  RequestStore();

  // The entry `name`, or nullptr if there is none.
  template <class T>
  std::shared_ptr<T> get(std::string_view name) const {
    return std::static_pointer_cast<T>(find(name, type_of<T>()));
  }

  // Sets (or replaces) the entry `name`; returns the stored value.
  template <class T, class U = T>
  std::shared_ptr<T> set(std::string_view name, U&& value) {
    auto stored = std::make_shared<T>(std::forward<U>(value));
    put(name, stored, type_of<T>());
    return stored;
  }

  // The entry `name`, created with `make()` (returning std::shared_ptr<T>) when
  // absent. `make` runs without the store's lock; if two threads of one request
  // race, the first to finish wins and the other's object is dropped.
  template <class T, class F>
  std::shared_ptr<T> get_or_create(std::string_view name, F&& make) {
    if (auto found = get<T>(name)) return found;
    std::shared_ptr<void> made = std::shared_ptr<T>(std::forward<F>(make)());
    return std::static_pointer_cast<T>(insert_if_absent(name, std::move(made), type_of<T>()));
  }

  bool erase(std::string_view name);
  bool contains(std::string_view name) const;
  std::size_t size() const;

  // True when both handles refer to the same store.
  friend bool operator==(const RequestStore& a, const RequestStore& b) noexcept {
    return a.impl_ == b.impl_;
  }

 private:
  struct Impl;

  template <class T>
  static const char* type_of() noexcept {
    return context_internal::portable_type_name(typeid(std::remove_cv_t<T>));
  }
  std::shared_ptr<void> find(std::string_view name, const char* type) const;
  void put(std::string_view name, std::shared_ptr<void> value, const char* type);
  std::shared_ptr<void> insert_if_absent(std::string_view name, std::shared_ptr<void> value,
                                         const char* type);

  std::shared_ptr<Impl> impl_;
};

// This request's store inside a unified request scope; a fresh empty store on
// every call outside one.
RequestStore request_store();

}  // namespace modgraph
