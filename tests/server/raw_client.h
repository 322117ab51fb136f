// raw_client.h — a byte-level loopback HTTP client for server tests: sends
// exactly the bytes a test gives it (malformed, partial, trickled) and reads
// with a deadline, so a server that never answers or never closes turns into a
// failed expectation rather than a hung test.
//
//   RawClient client(server->port());
//   client.Send("GET /echo HTTP/1.1\r\nHost: x\r\n");  // headers never finished
//   RawClient::Read reply = client.ReadUntilClosed();
//   EXPECT_THAT(reply.bytes, StartsWith("HTTP/1.1 408"));
//   EXPECT_TRUE(reply.closed);
//
// Plain POSIX sockets: Asio's blocking reads ignore SO_RCVTIMEO, and poll()
// gives the deadline directly.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

namespace modgraph::server::test {

class RawClient {
 public:
  // Everything a test waits on ends by an event; this only bounds a hang.
  static constexpr std::chrono::milliseconds kPatience{20'000};

  struct Read {
    std::string bytes;
    bool closed = false;  // the server closed (or reset) the connection
  };

  explicit RawClient(std::uint16_t port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(port);
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd_ >= 0 &&
        ::connect(fd_, reinterpret_cast<const sockaddr*>(&address), sizeof address) != 0) {
      ::close(fd_);
      fd_ = -1;
    }
    if (fd_ >= 0) {
      const int one = 1;
      ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
  }
  ~RawClient() {
    if (fd_ >= 0) ::close(fd_);
  }
  RawClient(const RawClient&) = delete;
  RawClient& operator=(const RawClient&) = delete;

  bool connected() const { return fd_ >= 0; }

  // False when the connection is gone (the server closed or reset it).
  bool Send(std::string_view bytes) {
    while (!bytes.empty()) {
      const ssize_t n = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return false;
      bytes.remove_prefix(static_cast<std::size_t>(n));
    }
    return true;
  }

  void ShutdownWrite() { ::shutdown(fd_, SHUT_WR); }

  // Reads until the server closes the connection or `patience` passes.
  Read ReadUntilClosed(std::chrono::milliseconds patience = kPatience) {
    return ReadUntil({}, patience);
  }

  // Reads until what arrived contains `text` (empty: until closed), the server
  // closes the connection, or `patience` passes.
  Read ReadUntil(std::string_view text, std::chrono::milliseconds patience = kPatience) {
    Read read;
    const auto deadline = std::chrono::steady_clock::now() + patience;
    while (text.empty() || read.bytes.find(text) == std::string::npos) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) break;
      pollfd p{.fd = fd_, .events = POLLIN, .revents = 0};
      const int ready = ::poll(&p, 1, static_cast<int>(left.count()));
      if (ready < 0 && errno == EINTR) continue;
      if (ready <= 0) break;
      char chunk[4096];
      const ssize_t n = ::recv(fd_, chunk, sizeof chunk, 0);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        read.closed = true;
        break;
      }
      read.bytes.append(chunk, static_cast<std::size_t>(n));
    }
    return read;
  }

 private:
  int fd_ = -1;
};

}  // namespace modgraph::server::test
