#include "modgraph/context/request_store.h"

#include <memory>
#include <stdexcept>
#include <string>

#include "gtest/gtest.h"
#include "modgraph/context/request_context.h"

namespace modgraph {
namespace {

TEST(RequestStoreTest, OutsideARequestEveryCallIsAFreshEmptyStore) {
  RequestStore first = request_store();
  first.set<std::string>("db", "leaked?");
  RequestStore second = request_store();
  EXPECT_FALSE(second == first);
  EXPECT_EQ(second.size(), 0u);
  EXPECT_EQ(second.get<std::string>("db"), nullptr);
}

TEST(RequestStoreTest, InsideARequestEveryCallSeesTheSameStore) {
  const RequestContext req = RequestContext::create(1);
  run_request(req, [] { request_store().set<int>("count", 1); });
  run_request(req, [] {
    auto count = request_store().get<int>("count");
    ASSERT_NE(count, nullptr);
    EXPECT_EQ(*count, 1);
  });
}

TEST(RequestStoreTest, RequestsAreIsolated) {
  const RequestContext a = RequestContext::create(1);
  const RequestContext b = RequestContext::create(2);
  run_request(a, [] { request_store().set<std::string>("user", "alice"); });
  run_request(b, [] { EXPECT_FALSE(request_store().contains("user")); });
  EXPECT_FALSE(request_store().contains("user"));
}

TEST(RequestStoreTest, GetOrCreateMakesOneValuePerRequest) {
  int made = 0;
  auto make = [&] { return std::make_shared<int>(++made); };
  const RequestContext req = RequestContext::create(1);
  run_request(req, [&] {
    EXPECT_EQ(*request_store().get_or_create<int>("client", make), 1);
    EXPECT_EQ(*request_store().get_or_create<int>("client", make), 1);
  });
  run_request(RequestContext::create(2),
              [&] { EXPECT_EQ(*request_store().get_or_create<int>("client", make), 2); });
}

TEST(RequestStoreTest, ReadingAsAnotherTypeThrowsNamingTheEntry) {
  RequestStore store;
  store.set<int>("n", 1);
  try {
    store.get<double>("n");
    FAIL() << "a type mismatch must throw";
  } catch (const std::logic_error& e) {
    EXPECT_NE(std::string(e.what()).find("'n'"), std::string::npos) << e.what();
  }
}

TEST(RequestStoreTest, SetReplacesAndEraseRemoves) {
  RequestStore store;
  store.set<int>("n", 1);
  store.set<int>("n", 2);
  EXPECT_EQ(*store.get<int>("n"), 2);
  EXPECT_TRUE(store.erase("n"));
  EXPECT_FALSE(store.erase("n"));
  EXPECT_EQ(store.size(), 0u);
}

TEST(RequestStoreTest, EntriesAreDestroyedWithTheRequest) {
  std::weak_ptr<int> entry;
  {
    const RequestContext req = RequestContext::create(1);
    entry = run_request(req, [] { return request_store().set<int>("n", 1); });
    EXPECT_FALSE(entry.expired());
  }
  EXPECT_TRUE(entry.expired());
}

}  // namespace
}  // namespace modgraph
