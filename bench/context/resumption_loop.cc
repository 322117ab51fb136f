// N coroutine resumptions through co_await post(...), for counting instructions
// per resumption with callgrind (docs/benchmarks.md):
//   resumption_loop <plain|context|plain_explicit|context_explicit> <N>
// "context" spawns with modgraph::co_spawn inside a request, "plain" with
// boost::asio::co_spawn; "explicit" posts through the coroutine's executor
// named explicitly, as request code does, instead of the handler's.
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <cstdlib>
#include <cstring>

#include "modgraph/context/asio.h"
#include "modgraph/context/request_context.h"
namespace asio = boost::asio;
volatile unsigned long long sink;

int main(int argc, char** argv) {
  if (argc != 3) return 2;
  const bool modgraph = std::strstr(argv[1], "context") != nullptr;
  const bool explicit_ex = std::strstr(argv[1], "explicit") != nullptr;
  const long n = std::atol(argv[2]);
  asio::io_context io(1);
  auto body = [n, explicit_ex]() -> asio::awaitable<void> {
    const auto ex = co_await asio::this_coro::executor;
    for (long i = 0; i < n; ++i) {
      if (explicit_ex)
        co_await asio::post(ex, asio::use_awaitable);
      else
        co_await asio::post(asio::use_awaitable);
      sink = modgraph::current_request_id();
    }
  };
  if (modgraph) {
    modgraph::run_request(modgraph::RequestContext::create(1),
                          [&] { modgraph::co_spawn(io, body(), asio::detached); });
  } else {
    asio::co_spawn(io, body(), asio::detached);
  }
  io.run();
}
