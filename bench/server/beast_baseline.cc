// beast_baseline — the limit for bench/server: a bare Boost.Beast HTTP/1.1
// server on one io_context thread that answers GET /concurrent-head?id=N with
// the same bytes `modgraph serve` sends for that page (status line, the same
// three headers, the same document), and nothing else a real server needs: no
// request scope, no modules, no timeouts, no connection cap.
//
// Written the way Beast's own http_server_async example is, at its best: one
// completion-handler session per connection (no coroutine frames, no strand
// with one thread), keep-alive, its flat_buffer, parser storage and response
// reused across requests, the page built into a reused string. With
// --threads N it runs N io_contexts, one thread each, as `modgraph serve
// --threads N` does.
//
//   build/release/bench/server/beast_baseline   # prints the port, serves until SIGTERM/SIGINT
//   build/release/bench/server/beast_baseline --threads 2   # two io_context threads
//   wrk -t1 -c16 -d5s 'http://127.0.0.1:PORT/concurrent-head?id=7'
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <cstdio>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

// The query parameter `name` of an origin-form target, undecoded.
std::string_view QueryParam(std::string_view target, std::string_view name) {
  const std::size_t question = target.find('?');
  if (question == std::string_view::npos) return {};
  std::string_view query = target.substr(question + 1);
  while (!query.empty()) {
    const std::size_t amp = query.find('&');
    const std::string_view pair = query.substr(0, amp);
    if (pair.size() > name.size() && pair.substr(0, name.size()) == name &&
        pair[name.size()] == '=') {
      return pair.substr(name.size() + 1);
    }
    if (amp == std::string_view::npos) break;
    query.remove_prefix(amp + 1);
  }
  return {};
}

// The concurrent-head page as server-entry wraps it in prod.
void RenderPage(std::string_view id, std::string& out) {
  out.clear();
  out += "<!DOCTYPE html><html><head><title>req-";
  out += id;
  out += "</title><meta name=\"req-id\" content=\"";
  out += id;
  out += "\"></head><body><h1 data-testid=\"req-id\">";
  out += id;
  out += "</h1></body></html>";
}

class Session : public std::enable_shared_from_this<Session> {
 public:
  explicit Session(tcp::socket socket) : socket_(std::move(socket)) {}

  void Start() { Read(); }

 private:
  void Read() {
    parser_.emplace();
    parser_->body_limit(1 << 20);
    http::async_read(
        socket_, buffer_, *parser_,
        [self = shared_from_this()](beast::error_code ec, std::size_t) { self->OnRead(ec); });
  }

  void OnRead(beast::error_code ec) {
    if (ec) return Close();
    const http::request<http::string_body>& request = parser_->get();
    const bool keep_alive = request.keep_alive();
    response_.version(request.version());
    response_.keep_alive(keep_alive);
    const std::string_view target = request.target();
    const http::status status = request.method() == http::verb::get &&
                                        target.starts_with("/concurrent-head") &&
                                        (target.size() == 16 || target[16] == '?')
                                    ? http::status::ok
                                    : http::status::not_found;
    if (status != response_.result() || response_.count(http::field::content_type) == 0) {
      // Fields are list nodes: set them only when they change.
      response_.result(status);
      response_.set(http::field::content_type, status == http::status::ok
                                                   ? "text/html; charset=utf-8"
                                                   : "text/plain; charset=utf-8");
    }
    if (status == http::status::ok) {
      const std::string_view id = QueryParam(target, "id");
      RenderPage(id.empty() ? std::string_view("none") : id, response_.body());
    } else {
      response_.body() = "not found\n";
    }
    response_.prepare_payload();
    http::async_write(
        socket_, response_,
        [self = shared_from_this(), keep_alive](beast::error_code write_error, std::size_t) {
          if (write_error || !keep_alive) return self->Close();
          self->Read();
        });
  }

  void Close() {
    beast::error_code ignored;
    socket_.shutdown(tcp::socket::shutdown_send, ignored);
  }

  tcp::socket socket_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  http::response<http::string_body> response_{[] {
    http::response<http::string_body> response;
    response.set(http::field::server, "modgraph");
    return response;
  }()};
};

// Accepts on the first io_context and hands connections to each in turn.
class Listener {
 public:
  explicit Listener(std::vector<std::unique_ptr<asio::io_context>>& ios)
      : ios_(ios), acceptor_(*ios.front()) {
    const tcp::endpoint endpoint(asio::ip::make_address("127.0.0.1"), 0);
    acceptor_.open(endpoint.protocol());
    acceptor_.set_option(asio::socket_base::reuse_address(true));
    acceptor_.bind(endpoint);
    acceptor_.listen(asio::socket_base::max_listen_connections);
  }

  std::uint16_t port() const { return acceptor_.local_endpoint().port(); }

  void Accept() {
    asio::io_context& io = *ios_[next_];
    next_ = (next_ + 1) % ios_.size();
    acceptor_.async_accept(io, [this](beast::error_code ec, tcp::socket socket) {
      if (ec == asio::error::operation_aborted) return;
      if (!ec) {
        socket.set_option(tcp::no_delay(true), ec);
        std::make_shared<Session>(std::move(socket))->Start();
      }
      Accept();
    });
  }

  void Close() { acceptor_.close(); }

 private:
  std::vector<std::unique_ptr<asio::io_context>>& ios_;
  std::size_t next_ = 0;
  tcp::acceptor acceptor_;
};

}  // namespace

int main(int argc, char** argv) {
  try {
    // --threads N: N io_contexts, each run by its own thread (how `modgraph
    // serve --threads N` runs); connections go to them in turn.
    std::size_t threads = 1;
    if (argc == 3 && std::string_view(argv[1]) == "--threads") threads = std::stoul(argv[2]);
    if ((argc != 1 && argc != 3) || threads < 1) {
      std::fprintf(stderr, "usage: beast_baseline [--threads N]\n");
      return 2;
    }
    std::vector<std::unique_ptr<asio::io_context>> ios;
    for (std::size_t i = 0; i < threads; ++i) {
      ios.push_back(std::make_unique<asio::io_context>(1));  // the hint `modgraph serve` gives
    }
    std::vector<asio::executor_work_guard<asio::io_context::executor_type>> keep_running;
    for (auto& io : ios) keep_running.push_back(asio::make_work_guard(*io));
    Listener listener(ios);
    listener.Accept();
    asio::signal_set signals(*ios.front(), SIGINT, SIGTERM);
    signals.async_wait([&](beast::error_code, int) {
      for (auto& io : ios) io->stop();
    });
    std::printf("%u\n", static_cast<unsigned>(listener.port()));
    std::fflush(stdout);
    std::vector<std::thread> runners;
    for (std::size_t i = 1; i < threads; ++i) runners.emplace_back([&io = *ios[i]] { io.run(); });
    ios.front()->run();
    for (std::thread& runner : runners) runner.join();
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "beast_baseline: %s\n", e.what());
    return 1;
  }
}
