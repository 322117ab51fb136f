#include "modgraph/context/thread.h"

#include <atomic>
#include <cstdint>
#include <latch>
#include <set>
#include <stop_token>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "modgraph/context/request_context.h"
#include "modgraph/context/request_store.h"

namespace modgraph {
namespace {

struct Counter {
  std::atomic<int> value{0};
};
const StateKind<Counter> kCounter{"test.thread.counter"};

TEST(ThreadPropagationTest, SubmitRunsInTheSubmittingScope) {
  boost::asio::thread_pool pool(2);
  const RequestContext req = RequestContext::create(21);
  auto inside = run_request(req, [&] { return submit(pool, [] { return current_request_id(); }); });
  auto outside = submit(pool, [] { return current_request_id(); });
  EXPECT_EQ(inside.get(), 21u);
  EXPECT_EQ(outside.get(), 0u);
}

TEST(ThreadPropagationTest, SubmitCarriesExceptions) {
  boost::asio::thread_pool pool(1);
  auto result = submit(pool, []() -> int { throw std::runtime_error("x"); });
  EXPECT_THROW(result.get(), std::runtime_error);
}

TEST(ThreadPropagationTest, SpawnThreadRunsInTheSpawningScope) {
  const RequestContext req = RequestContext::create(22);
  std::uint64_t seen = 0;
  bool got_stop_token = false;
  {
    std::jthread plain =
        run_request(req, [&] { return spawn_thread([&] { seen = current_request_id(); }); });
  }
  EXPECT_EQ(seen, 22u);
  {
    std::jthread with_token = run_request(req, [&] {
      return spawn_thread([&](std::stop_token stop) { got_stop_token = stop.stop_possible(); });
    });
  }
  EXPECT_TRUE(got_stop_token);
}

// Threads of one request racing on the first access of a kind agree on one
// instance, and the request store is shared across them.
TEST(ThreadPropagationTest, ThreadsOfOneRequestShareItsStateAndStore) {
  constexpr int kThreads = 8;
  const RequestContext req = RequestContext::create(23);
  std::latch start(kThreads);
  std::vector<Counter*> seen(kThreads);
  std::vector<RequestStore> stores(kThreads);
  run_request(req, [&] {
    std::vector<std::jthread> threads;
    for (int i = 0; i < kThreads; ++i) {
      threads.push_back(spawn_thread([&, i] {
        start.arrive_and_wait();
        seen[i] = kCounter.get();
        ++seen[i]->value;
        stores[i] = request_store();
      }));
    }
  });
  EXPECT_EQ(std::set<Counter*>(seen.begin(), seen.end()).size(), 1u);
  EXPECT_EQ(seen[0]->value, kThreads);
  for (const RequestStore& store : stores) EXPECT_TRUE(store == stores[0]);
  EXPECT_FALSE(request_store() == stores[0]);
}

}  // namespace
}  // namespace modgraph
