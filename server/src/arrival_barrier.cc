// Page work that parks each request until N have arrived; see arrival_barrier.h.
#include "modgraph/server/arrival_barrier.h"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <mutex>
#include <utility>
#include <vector>

namespace modgraph::server {
namespace asio = boost::asio;

struct ArrivalBarrier::State {
  explicit State(std::size_t n) : parties(n) {}
  const std::size_t parties;
  std::mutex mutex;
  std::size_t arrived = 0;
  std::vector<std::shared_ptr<asio::steady_timer>> waiting;
};

ArrivalBarrier::ArrivalBarrier(std::size_t parties) : state_(std::make_shared<State>(parties)) {}
ArrivalBarrier::~ArrivalBarrier() = default;

std::size_t ArrivalBarrier::arrived() const {
  std::lock_guard lock(state_->mutex);
  return state_->arrived;
}

std::function<asio::awaitable<void>()> ArrivalBarrier::Work() {
  return [state = state_, first = std::make_shared<bool>(true)]() -> asio::awaitable<void> {
    auto executor = co_await asio::this_coro::executor;
    if (!std::exchange(*first, false)) co_return;  // only the first await parks
    auto timer =
        std::make_shared<asio::steady_timer>(executor, asio::steady_timer::time_point::max());
    bool park = false;
    std::vector<std::shared_ptr<asio::steady_timer>> release;
    {
      std::lock_guard lock(state->mutex);
      park = ++state->arrived < state->parties;
      if (park) {
        state->waiting.push_back(timer);
      } else {
        release.swap(state->waiting);
      }
    }
    // Cancel through each waiter's own executor: the post runs after the waiter
    // has started its wait (same strand or thread), so no release is lost.
    for (const auto& waiter : release) {
      asio::post(waiter->get_executor(), [waiter] { waiter->cancel(); });
    }
    if (park) co_await timer->async_wait(asio::as_tuple(asio::use_awaitable));
  };
}

}  // namespace modgraph::server
