// modgraph/server/arrival_barrier.h — page work that makes a concurrent burst
// deterministic: each request parks at its first await until `parties`
// requests have arrived, then all continue. With N concurrent requests and N
// parties, every request writes its state before any request reads it.
//
//   auto barrier = std::make_shared<ArrivalBarrier>(15);
//   Router router = MakePageRouter(
//       *host, [barrier](const Request&) -> absl::StatusOr<pages::AsyncWork> {
//         return barrier->Work();
//       });   // page_routes.h
//
// `modgraph serve --barrier N` serves with one; the tests use it to make an
// HTTP burst reproducible. A request that never comes leaves the others parked
// until the server stops (its drain deadline cancels them).
#pragma once

#include <boost/asio/awaitable.hpp>
#include <cstddef>
#include <functional>
#include <memory>

namespace modgraph::server {

class ArrivalBarrier {
 public:
  explicit ArrivalBarrier(std::size_t parties);
  ~ArrivalBarrier();
  // The work for one request (thread-safe; a pages::AsyncWork, usable as a
  // WorkFactory's result). Only its first await parks.
  std::function<boost::asio::awaitable<void>()> Work();
  // How many requests have arrived so far.
  std::size_t arrived() const;

 private:
  struct State;
  std::shared_ptr<State> state_;
};

}  // namespace modgraph::server
