// One connection's requests: parse, admit, run the handler in its request
// scope, write the response; phase deadlines; error replies with a lingering
// close. See server_impl.h. One file: the request loop and the replies it
// writes share the connection's state and its phase deadlines.
#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <boost/asio/post.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/http.hpp>
#include <charconv>
#include <cstdio>
#include <memory_resource>
#include <optional>
#include <source_location>
#include <string>
#include <string_view>
#include <tuple>
#include <utility>

#include "modgraph/context/asio.h"
#include "modgraph/context/request_context.h"
#include "server_impl.h"

namespace modgraph::server {

namespace http = beast::http;

std::string one_line(std::string text) {
  for (char& c : text) {
    if (c == '\n' || c == '\r') c = ' ';
  }
  return text;
}

std::string describe(const std::exception_ptr& error) {
  try {
    std::rethrow_exception(error);
  } catch (const std::exception& e) {
    return one_line(e.what());
  } catch (...) {
    return "unknown exception (not derived from std::exception)";
  }
}

namespace {

Response plain(int status, std::string body) {
  return Response{
      .status = status, .content_type = "text/plain; charset=utf-8", .body = std::move(body)};
}

// Read errors that mean the peer went away (or we closed the connection), as
// opposed to bytes that are not HTTP.
bool connection_gone(const boost::system::error_code& ec) {
  return ec == http::error::end_of_stream || ec == http::error::partial_message ||
         ec == asio::error::eof || ec == asio::error::operation_aborted ||
         ec == asio::error::bad_descriptor || ec == asio::error::connection_reset ||
         ec == asio::error::broken_pipe || ec == asio::error::not_connected;
}

// A request's fields and target live in a per-connection arena, released
// before the next request is parsed: the parser allocates nothing per request.
using ParserAllocator = std::pmr::polymorphic_allocator<char>;
using RequestParser = http::request_parser<http::string_body, ParserAllocator>;
using RequestMessage = http::request<http::string_body, http::basic_fields<ParserAllocator>>;

// Fills `request` (its maps already reclaimed into `spare`) from `message`,
// reusing its strings' capacity and the spare nodes: a connection's requests
// after the first allocate nothing here unless they are larger.
void FillRequest(const RequestMessage& message, std::uint64_t id,
                 server_internal::SpareNodes& spare, std::string& name, Request& request) {
  request.method.assign(message.method_string());
  request.target.assign(message.target());
  request.id = id;
  for (const auto& field : message) {
    name.assign(field.name_string());
    for (char& c : name) {
      if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');  // field names are ASCII
    }
    if (auto it = request.headers.find(name); it != request.headers.end()) {
      it->second += ", ";
      it->second += std::string_view(field.value());
    } else {
      spare.Insert(request.headers, name, field.value());
    }
  }
  request.body.assign(message.body());
}

// Whether a response's head is the plain one AppendResponseHead writes: a
// status Beast knows by name that carries a Content-Length (not 1xx, 204, 304).
bool HasPlainHead(int status) {
  const http::status known = http::int_to_status(static_cast<unsigned>(status));
  return known != http::status::unknown && status >= 200 && status != 204 && status != 304;
}

// The head Beast's serializer writes for a response with the server's fields
// (Server, Content-Type, Allow if any, Connection as keep_alive() sets it for
// the version, Content-Length), appended to `out`.
void AppendResponseHead(std::string& out, unsigned version, int status,
                        std::string_view content_type, std::string_view allow, bool keep_alive,
                        std::size_t content_length) {
  char digits[24];
  out += "HTTP/";
  out += static_cast<char>('0' + version / 10);
  out += '.';
  out += static_cast<char>('0' + version % 10);
  out += ' ';
  out.append(digits, std::to_chars(digits, digits + sizeof digits, status).ptr);
  out += ' ';
  const beast::string_view reason = http::obsolete_reason(static_cast<http::status>(status));
  out.append(reason.data(), reason.size());
  out += "\r\nServer: modgraph\r\nContent-Type: ";
  out += content_type;
  if (!allow.empty()) {
    out += "\r\nAllow: ";
    out += allow;
  }
  if (version >= 11 && !keep_alive) out += "\r\nConnection: close";
  if (version < 11 && keep_alive) out += "\r\nConnection: keep-alive";
  out += "\r\nContent-Length: ";
  out.append(digits, std::to_chars(digits, digits + sizeof digits, content_length).ptr);
  out += "\r\n\r\n";
}

}  // namespace

void HttpServer::Impl::SetDeadline(const std::shared_ptr<Session>& session,
                                   std::chrono::milliseconds timeout, Clock::time_point now) {
  session->timed_out = false;
  session->deadline = now + timeout;
  // The watchdog only moves earlier: a later deadline is found when it wakes.
  if (session->deadline < session->armed_until) ArmWatchdog(session, session->deadline);
}

void HttpServer::Impl::ArmWatchdog(const std::shared_ptr<Session>& session, Clock::time_point at) {
  session->armed_until = at;
  const std::uint64_t generation = ++session->arm_generation;
  session->timer.expires_at(at);
  session->timer.async_wait([session, generation](const boost::system::error_code& ec) {
    if (ec || generation != session->arm_generation) return;  // re-armed or cancelled
    session->armed_until = Clock::time_point::max();
    if (session->deadline == Clock::time_point::max()) return;  // no phase deadline now
    if (Clock::now() < session->deadline) {
      ArmWatchdog(session, session->deadline);
      return;
    }
    session->timed_out = true;
    boost::system::error_code ignored;
    session->socket.cancel(ignored);
  });
}
asio::awaitable<void> HttpServer::Impl::Refuse(std::shared_ptr<Session> session) {
  beast::flat_buffer buffer;
  co_await ReplyErrorAndClose(
      session, buffer, 503,
      fmt::format("503 service unavailable: all {} connections have a request in progress; "
                  "retry shortly\n",
                  connection_limit));
  Forget(session);
}

const Route* HttpServer::Impl::Admit(Request& request, server_internal::SpareNodes& spare,
                                     Outcome& refusal) const {
  if (absl::Status decoded =
          server_internal::DecodeTarget(request.target, request.path, request.query, spare);
      !decoded.ok()) {
    refusal = Outcome{.response = plain(400, fmt::format("400 bad request: {}\n",
                                                         std::string(decoded.message()))),
                      .close = true};
    return nullptr;
  }
  const Route* route = router.Find(request.path);
  if (!IsStandardMethod(request.method)) {
    refusal = Outcome{
        .response = plain(501, fmt::format("501 not implemented: method '{}' is not an HTTP "
                                           "method this server knows (RFC 9110 section 9)\n",
                                           request.method)),
        .allow = route != nullptr ? route->allow : std::string()};
    return nullptr;
  }
  if (route == nullptr) {
    refusal = Outcome{.response = plain(404, fmt::format("404 not found: {}\n", request.path))};
    return nullptr;
  }
  if (!route->serves(request.method)) {
    refusal = Outcome{.response = plain(405, fmt::format("405 method not allowed: {} serves {}\n",
                                                         request.path, route->allow)),
                      .allow = route->allow};
    return nullptr;
  }
  return route;
}

Outcome HttpServer::Impl::Complete(const Session& session, const Request& request,
                                   const std::exception_ptr& error, Response response) {
  if (error && session.cancelled) {
    cancelled.fetch_add(1, std::memory_order_relaxed);
    fmt::print(stderr,
               "modgraph server: 503 for {} {} (request {}): cancelled at the drain deadline "
               "({} ms after the stop began)\n",
               request.method, request.path, request.id, ms(options.drain_timeout));
    std::fflush(stderr);
    return Outcome{.response =
                       plain(503, fmt::format("503 service unavailable: the server is stopping and "
                                              "request {} did not finish within {} ms\n",
                                              request.id, ms(options.drain_timeout)))};
  }
  if (error) {
    fmt::print(stderr, "modgraph server: 500 for {} {} (request {}): handler threw: {}\n",
               request.method, request.path, request.id, describe(error));
    std::fflush(stderr);
    return Outcome{.response = plain(
                       500, fmt::format("500 internal server error (request {})\n", request.id))};
  }
  if (response.status < 100 || response.status > 599) {
    fmt::print(stderr, "modgraph server: 500 for {} {} (request {}): handler returned status {}\n",
               request.method, request.path, request.id, response.status);
    std::fflush(stderr);
    return Outcome{.response = plain(
                       500, fmt::format("500 internal server error (request {})\n", request.id))};
  }
  return Outcome{.response = std::move(response)};
}

asio::awaitable<void> HttpServer::Impl::ReplyErrorAndClose(const std::shared_ptr<Session>& session,
                                                           beast::flat_buffer& buffer, int status,
                                                           std::string body) {
  http::response<http::string_body> reply{static_cast<http::status>(status), 11};
  reply.set(http::field::server, "modgraph");
  reply.set(http::field::content_type, "text/plain; charset=utf-8");
  if (status == 503) reply.set(http::field::retry_after, "1");
  reply.keep_alive(false);
  reply.body() = std::move(body);
  reply.prepare_payload();
  SetDeadline(session, std::min<std::chrono::milliseconds>(options.write_timeout, kLingerTime));
  auto [write_error, written] = co_await http::async_write(session->socket, reply, kNoThrow);
  if (!write_error) co_await Linger(session, buffer);
}

asio::awaitable<void> HttpServer::Impl::Linger(const std::shared_ptr<Session>& session,
                                               beast::flat_buffer& buffer) {
  // Lingering close: stop sending, then read and drop what is still coming
  // (bounded in time and bytes) so the client reads the reply, not a reset.
  if (session->phase.load(std::memory_order_relaxed) != Phase::kRefusing) {
    EnterPhase(*session, Phase::kClosing);
  }
  boost::system::error_code ignored;
  session->socket.shutdown(tcp::socket::shutdown_send, ignored);
  SetDeadline(session, kLingerTime);
  std::size_t discarded = buffer.size();
  buffer.clear();
  while (discarded < kLingerBytes) {
    auto [read_error, n] =
        co_await session->socket.async_read_some(buffer.prepare(kFirstRead), kNoThrow);
    if (read_error) break;
    discarded += n;
  }
}

asio::awaitable<void> HttpServer::Impl::Serve(std::shared_ptr<Session> session) {
  Session& s = *session;
  beast::flat_buffer buffer;
  // Reused by every request and response on this connection.
  std::string reply_head;
  Request request;
  server_internal::SpareNodes spare;
  std::string field_name;
  for (;;) {
    // What the last request left is given back before waiting idle, beyond
    // what a usual request reuses: the parser's blocks, a large body or
    // target, large or surplus map nodes.
    s.parse_arena.release();  // the last request's parser is gone
    spare.Reclaim(request.headers);
    spare.Reclaim(request.query);
    server_internal::TrimKept(request);

    // RequestStop sees either an idle phase (and closes the socket) or, after
    // this point, stopping == true: both run on this thread.
    const Clock::time_point idle_since = EnterPhase(s, Phase::kIdle);
    if (stopping.load() || s.close_after_response) break;

    if (buffer.size() == 0) {
      SetDeadline(session, options.idle_timeout, idle_since);
      auto [idle_error, n] =
          co_await s.socket.async_read_some(buffer.prepare(kFirstRead), kNoThrow);
      buffer.commit(n);
      // Idle timeout, the peer closed, or a stop/the cap closed it: no reply.
      if (idle_error) break;
    }

    SetDeadline(session, options.header_timeout, EnterPhase(s, Phase::kHeader));
    RequestParser parser(std::piecewise_construct, std::make_tuple(),
                         std::make_tuple(ParserAllocator(&s.parse_arena)));
    parser.header_limit(kHeaderLimit);
    parser.body_limit(options.max_body_bytes);
    // Usually the whole head is in the buffer already: parse it here rather
    // than through async_read_header, which would complete through a post.
    boost::system::error_code read_error;
    while (!parser.is_header_done() && buffer.size() > 0) {
      const std::size_t used = parser.put(buffer.data(), read_error);
      buffer.consume(used);
      if (read_error == http::error::need_more) {
        read_error = {};
        break;
      }
      if (read_error || used == 0) break;
    }
    if (!read_error && !parser.is_header_done()) {
      auto [header_error, header_bytes] =
          co_await http::async_read_header(s.socket, buffer, parser, kNoThrow);
      read_error = header_error;
    }
    const char* late = "headers";
    std::chrono::milliseconds late_limit = options.header_timeout;
    if (!read_error && !parser.is_done()) {
      EnterPhase(s, Phase::kBody);
      if (parser.get().version() == 11 &&
          beast::iequals(parser.get()[http::field::expect], "100-continue")) {
        SetDeadline(session, options.write_timeout);
        http::response<http::empty_body> go_on{http::status::continue_, 11};
        auto [continue_error, sent] = co_await http::async_write(s.socket, go_on, kNoThrow);
        if (continue_error) break;
      }
      SetDeadline(session, options.body_timeout);
      late = "body";
      late_limit = options.body_timeout;
      auto [body_error, body_bytes] = co_await http::async_read(s.socket, buffer, parser, kNoThrow);
      read_error = body_error;
    }
    if (read_error) {
      if (s.timed_out) {
        co_await ReplyErrorAndClose(
            session, buffer, 408,
            fmt::format("408 request timeout: the request's {} did not arrive within {} ms\n", late,
                        ms(late_limit)));
        break;
      }
      if (connection_gone(read_error)) break;
      // Bytes that are not HTTP/1.x (or too much of it): answer once and close.
      const int status = read_error == http::error::body_limit     ? 413
                         : read_error == http::error::header_limit ? 431
                                                                   : 400;
      co_await ReplyErrorAndClose(
          session, buffer, status,
          fmt::format("{} malformed request: {}\n", status, read_error.message()));
      break;
    }
    // Closed by a stop or to make room while the last bytes arrived.
    if (!s.socket.is_open()) break;

    EnterPhase(s, Phase::kHandling);
    ClearDeadline(s);
    const RequestMessage& message = parser.get();
    FillRequest(message, NextRequestId(), spare, field_name, request);
    std::atomic<std::uint64_t>& started = io_counters[s.io_index].requests;
    started.store(started.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
    Outcome outcome;
    if (const Route* route = Admit(request, spare, outcome)) {
      std::exception_ptr error;
      Response response;
      {
        // The request scope (a new RequestContext, inheriting nothing: the
        // connection's code runs in none) is current in the handler's
        // synchronous part and, through the context-aware executor this
        // coroutine runs on, in every step of it after a co_await until the
        // scope ends (docs/context.md, "A ContextScope across co_await"). The
        // handler runs in this coroutine: no spawn, frame or hop per request.
        std::optional<ContextScope> scope;
        const std::source_location handler_site = std::source_location::current();
        if (options.context_enabled) scope.emplace(RequestContext::create(request.id).context());
        try {
          response = co_await route->handler(request);
        } catch (...) {
          error = std::current_exception();
        }
        // A completion called on another thread, not through the executor,
        // resumed the handler there without its context: report it (as
        // modgraph::co_spawn does), and come back to the connection's thread.
        // The handler may have changed this coroutine's cancellation settings
        // (this_coro::throw_if_cancelled, reset_cancellation_state with a
        // filter), and the drain may have cancelled it: the next request and
        // this one's answer start from the defaults. Neither suspends.
        co_await asio::this_coro::reset_cancellation_state();
        co_await asio::this_coro::throw_if_cancelled(true);
        // A completion called on another thread, not through the executor,
        // resumed the handler there without its context: report it (as
        // modgraph::co_spawn does), then come back to the connection's thread
        // while the scope still stands, so that its end restores this thread.
        if (scope) context_internal::check_still_in_request(request.id, handler_site);
        if (!s.socket.get_executor().running_in_this_thread()) {
          co_await asio::post(s.socket.get_executor(), asio::use_awaitable);
        }
      }
      outcome = Complete(s, request, error, std::move(response));
    }

    const Clock::time_point writing_since = EnterPhase(s, Phase::kWriting);
    const bool keep_alive =
        message.keep_alive() && !outcome.close && !stopping.load() && !s.close_after_response;
    const bool head = message.method() == http::verb::head;
    SetDeadline(session, options.write_timeout, writing_since);
    boost::system::error_code write_error;
    if (HasPlainHead(outcome.response.status)) {
      // The head written by hand into a buffer the connection keeps (Beast's
      // serializer costs more than the rest of the write here), byte for byte
      // what Beast writes for it; the body is written from the response.
      reply_head.clear();
      AppendResponseHead(reply_head, message.version(), outcome.response.status,
                         outcome.response.content_type, outcome.allow, keep_alive,
                         outcome.response.body.size());
      const std::array<asio::const_buffer, 2> parts{
          asio::buffer(reply_head),
          head ? asio::const_buffer() : asio::buffer(outcome.response.body)};
      auto [error, written] = co_await asio::async_write(s.socket, parts, kNoThrow);
      write_error = error;
    } else {
      http::response<http::string_body> reply{static_cast<http::status>(outcome.response.status),
                                              message.version()};
      reply.set(http::field::server, "modgraph");
      reply.set(http::field::content_type, outcome.response.content_type);
      if (!outcome.allow.empty()) reply.set(http::field::allow, outcome.allow);
      reply.keep_alive(keep_alive);
      reply.body() = std::move(outcome.response.body);
      reply.prepare_payload();
      if (head) reply.body().clear();  // length stays
      auto [error, written] = co_await http::async_write(s.socket, reply, kNoThrow);
      write_error = error;
    }
    if (write_error) break;
    if (outcome.close) {
      // Malformed: the rest of what the client sent is not trusted.
      co_await Linger(session, buffer);
      break;
    }
    if (!keep_alive) break;
  }

  boost::system::error_code ignored;
  s.socket.shutdown(tcp::socket::shutdown_send, ignored);
  Forget(session);
}

}  // namespace modgraph::server
