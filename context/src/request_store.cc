#include "modgraph/context/request_store.h"

#include <fmt/format.h>

#include <functional>
#include <map>
#include <mutex>
#include <stdexcept>
#include <string>

#include "modgraph/context/request_context.h"

namespace modgraph {

struct RequestStore::Impl {
  struct Entry {
    std::shared_ptr<void> value;
    std::string type;
  };

  // Throws if `entry` holds another type than the caller asked for.
  static const std::shared_ptr<void>& checked(std::string_view name, const Entry& entry,
                                              const char* type) {
    if (entry.type != type) {
      throw std::logic_error(
          fmt::format("modgraph: request store entry '{}' holds a value of type {}, not of type {}",
                      name, entry.type, type));
    }
    return entry.value;
  }

  mutable std::mutex mu;
  std::map<std::string, Entry, std::less<>> entries;  // guarded by mu
};

RequestStore::RequestStore() : impl_(std::make_shared<Impl>()) {}

std::shared_ptr<void> RequestStore::find(std::string_view name, const char* type) const {
  std::lock_guard lock(impl_->mu);
  auto it = impl_->entries.find(name);
  return it == impl_->entries.end() ? nullptr : Impl::checked(name, it->second, type);
}

void RequestStore::put(std::string_view name, std::shared_ptr<void> value, const char* type) {
  std::shared_ptr<void> replaced;  // destroyed after the lock is released
  std::lock_guard lock(impl_->mu);
  auto it = impl_->entries.try_emplace(std::string(name)).first;
  replaced = std::exchange(it->second.value, std::move(value));
  it->second.type = type;
}

std::shared_ptr<void> RequestStore::insert_if_absent(std::string_view name,
                                                     std::shared_ptr<void> value,
                                                     const char* type) {
  std::lock_guard lock(impl_->mu);
  auto [it, inserted] =
      impl_->entries.try_emplace(std::string(name), Impl::Entry{std::move(value), type});
  return inserted ? it->second.value : Impl::checked(name, it->second, type);
}

bool RequestStore::erase(std::string_view name) {
  std::shared_ptr<void> erased;
  std::lock_guard lock(impl_->mu);
  auto it = impl_->entries.find(name);
  if (it == impl_->entries.end()) return false;
  erased = std::move(it->second.value);
  impl_->entries.erase(it);
  return true;
}

bool RequestStore::contains(std::string_view name) const {
  std::lock_guard lock(impl_->mu);
  return impl_->entries.find(name) != impl_->entries.end();
}

std::size_t RequestStore::size() const {
  std::lock_guard lock(impl_->mu);
  return impl_->entries.size();
}

RequestStore request_store() {
  static const StateKind<RequestStore> kRequestStore{"modgraph.request-store"};
  if (RequestStore* store = kRequestStore.get()) return *store;
  return RequestStore();
}

}  // namespace modgraph
