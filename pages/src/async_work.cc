// The asynchronous work of a page; see async_work.h.
#include "modgraph/pages/async_work.h"

#include <fmt/format.h>

#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <charconv>
#include <chrono>
#include <system_error>

namespace modgraph::pages {

absl::StatusOr<AsyncWork> TopologyWork(const std::map<std::string, std::string>& query,
                                       int work_ms) {
  int delay_ms = work_ms;
  if (auto it = query.find("delay_ms"); it != query.end()) {
    const std::string& text = it->second;
    const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), delay_ms);
    if (error != std::errc() || end != text.data() + text.size() || delay_ms < 0 ||
        delay_ms > kMaxDelayMs) {
      return absl::InvalidArgumentError(
          fmt::format("delay_ms must be a whole number of milliseconds from 0 to {}; got '{}'",
                      kMaxDelayMs, text.size() > 40 ? text.substr(0, 40) + "..." : text));
    }
  }
  return [delay_ms]() -> boost::asio::awaitable<void> {
    if (delay_ms <= 0) {
      // Yield through the awaiting coroutine's own executor (the handler's
      // associated executor): the same hop as naming the executor, without the
      // type-erased work dispatcher Asio adds for an explicit one
      // (docs/benchmarks.md, "Per coroutine resumption").
      co_await boost::asio::post(boost::asio::use_awaitable);
    } else {
      boost::asio::steady_timer timer(co_await boost::asio::this_coro::executor,
                                      std::chrono::milliseconds(delay_ms));
      co_await timer.async_wait(boost::asio::use_awaitable);
    }
  };
}

}  // namespace modgraph::pages
