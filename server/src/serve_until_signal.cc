// ServeUntilSignal (http_server.h): SIGINT/SIGTERM on the caller's thread
// become a graceful stop, a second one an immediate stop.
#include <fmt/format.h>
#include <pthread.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <csignal>
#include <cstdio>
#include <functional>
#include <thread>

#include "server_impl.h"

namespace modgraph::server {

absl::Status ServeUntilSignal(HttpServer& server, std::function<void()> on_ready) {
  HttpServer::Impl& impl = *server.impl_;
  if (impl.serving_signals.exchange(true)) {
    return absl::FailedPreconditionError("ServeUntilSignal: already serving this server");
  }
  struct Release {
    std::atomic<bool>& flag;
    ~Release() { flag.store(false); }
  } release{impl.serving_signals};

  // Signals arrive on this thread's own io_context, so they are seen even when
  // every io thread is busy (or stopped).
  asio::io_context signal_io(1);
  asio::signal_set signals(signal_io);
  for (int signal_number : {SIGINT, SIGTERM}) {
    boost::system::error_code ec;
    if (signals.add(signal_number, ec); ec) {
      return absl::InternalError(
          fmt::format("ServeUntilSignal: cannot install a handler for signal {}: {}", signal_number,
                      ec.message()));
    }
  }
  int received = 0;
  std::function<void(const boost::system::error_code&, int)> on_signal =
      [&](const boost::system::error_code& ec, int signal_number) {
        if (ec) return;  // cancelled: the server has stopped
        const char* name = signal_number == SIGINT    ? "SIGINT"
                           : signal_number == SIGTERM ? "SIGTERM"
                                                      : "signal";
        if (++received == 1) {
          fmt::print(stderr,
                     "modgraph server: {} received; stopping: in-flight requests have {} ms to "
                     "complete (a second SIGINT or SIGTERM stops at once)\n",
                     name, ms(impl.options.drain_timeout));
          std::fflush(stderr);
          server.RequestStop();
        } else {
          fmt::print(stderr,
                     "modgraph server: second signal ({}) received; stopping at once, abandoning "
                     "in-flight requests\n",
                     name);
          std::fflush(stderr);
          server.Abort();
        }
        signals.async_wait(on_signal);
      };
  signals.async_wait(on_signal);
  // A caller may block SIGINT/SIGTERM while it starts up (modgraph serve does,
  // so a signal during loading is not lost and does not kill it half-loaded):
  // unblock them on this thread, where a pending one is delivered now.
  sigset_t stop_signals;
  sigset_t previous_mask;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_UNBLOCK, &stop_signals, &previous_mask);
  if (on_ready) on_ready();
  std::thread waiter([&] {
    server.Wait();
    asio::post(signal_io, [&] {
      boost::system::error_code ignored;
      signals.cancel(ignored);
    });
  });
  signal_io.run();
  waiter.join();
  pthread_sigmask(SIG_SETMASK, &previous_mask, nullptr);
  return absl::OkStatus();
}

}  // namespace modgraph::server
