// modgraph/context/thread.h — carrying the request context onto other threads.
//
// A new thread, or a task run by a pool, starts with no context. These helpers
// capture the current context where the work is handed over and install it
// where the work runs.
//
//   boost::asio::thread_pool pool(4);
//   auto title = modgraph::submit(pool, [] { return render_title(); });  // same request
//   std::jthread worker = modgraph::spawn_thread([](std::stop_token stop) { ... });
#pragma once

#include <boost/asio/post.hpp>
#include <boost/asio/thread_pool.hpp>
#include <future>
#include <thread>
#include <type_traits>
#include <utility>

#include "modgraph/context/context.h"

namespace modgraph {

// Runs `fn()` on `pool` in the current context; the future holds its result or
// exception.
template <class F>
auto submit(boost::asio::thread_pool& pool, F&& fn)
    -> std::future<std::invoke_result_t<std::decay_t<F>&>> {
  std::packaged_task<std::invoke_result_t<std::decay_t<F>&>()> task(bind(std::forward<F>(fn)));
  auto result = task.get_future();
  boost::asio::post(pool, std::move(task));
  return result;
}

// A std::jthread running `fn(args...)` in the current context. As with
// std::jthread, `fn` receives the thread's std::stop_token first if it takes one.
template <class F, class... Args>
std::jthread spawn_thread(F&& fn, Args&&... args) {
  return std::jthread(bind(std::forward<F>(fn)), std::forward<Args>(args)...);
}

}  // namespace modgraph
