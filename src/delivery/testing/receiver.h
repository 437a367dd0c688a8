// A small HTTP/1.1 receiver for the dispatcher's tests, on 127.0.0.1 and a free port: keep-alive,
// one thread per connection, a scripted reply per request. Header-only, for test executables.
// Thread-safe.
#pragma once

#include <sys/socket.h>

#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <cctype>
#include <chrono>
#include <condition_variable>
#include <csignal>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace outbound::delivery::testing {

namespace beast = boost::beast;
namespace http = boost::beast::http;
using boost::asio::ip::tcp;
using namespace std::chrono_literals;

struct Received {
  std::string target;
  std::map<std::string, std::string> headers;  // lower-case names
  std::string body;
  int index = 0;  // 0-based arrival order
};

struct Reply {
  int status = 200;
  std::string body = "ok";
  std::vector<std::pair<std::string, std::string>> headers;
  bool hang = false;  // never answer (until the receiver stops)
  // Bytes written as they are before the answer (or the hang): an interim response such as
  // "HTTP/1.1 102 Processing\r\n\r\n".
  std::string interim = {};
};

class Receiver {
 public:
  using Script = std::function<Reply(const Received&)>;

  explicit Receiver(Script script = [](const Received&) { return Reply{}; })
      : script_(std::move(script)), acceptor_(ioc_) {
    std::signal(SIGPIPE, SIG_IGN);
    tcp::endpoint ep(boost::asio::ip::make_address("127.0.0.1"), 0);
    acceptor_.open(ep.protocol());
    acceptor_.set_option(tcp::acceptor::reuse_address(true));
    acceptor_.bind(ep);
    acceptor_.listen();
    port_ = acceptor_.local_endpoint().port();
    accept_thread_ = std::thread([this] { AcceptLoop(); });
  }

  ~Receiver() {
    {
      std::lock_guard lock(mu_);
      stopping_ = true;
      for (int fd : fds_) ::shutdown(fd, SHUT_RDWR);
    }
    cv_.notify_all();
    ::shutdown(acceptor_.native_handle(), SHUT_RDWR);
    accept_thread_.join();
    for (auto& t : conn_threads_) t.join();
  }

  std::string Url(const std::string& path = "/hook") const {
    return "http://127.0.0.1:" + std::to_string(port_) + path;
  }
  int port() const { return port_; }

  std::vector<Received> Requests() {
    std::lock_guard lock(mu_);
    return requests_;
  }
  std::size_t Count() {
    std::lock_guard lock(mu_);
    return requests_.size();
  }
  bool WaitForCount(std::size_t n, std::chrono::milliseconds timeout = 10s) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, timeout, [&] { return requests_.size() >= n; });
  }

 private:
  void AcceptLoop() {
    while (true) {
      boost::system::error_code ec;
      tcp::socket socket(ioc_);
      acceptor_.accept(socket, ec);
      std::lock_guard lock(mu_);
      if (ec || stopping_) return;
      fds_.push_back(socket.native_handle());
      conn_threads_.emplace_back(
          [this, s = std::make_shared<tcp::socket>(std::move(socket))]() mutable { Serve(*s); });
    }
  }

  void Serve(tcp::socket& socket) {
    beast::flat_buffer buffer;
    while (true) {
      http::request_parser<http::string_body> parser;
      parser.body_limit(std::uint64_t{16} * 1024 * 1024);
      boost::system::error_code ec;
      http::read(socket, buffer, parser, ec);
      if (ec) return;
      auto& req = parser.get();
      Received r;
      r.target = std::string(req.target());
      for (const auto& field : req) {
        std::string name(field.name_string());
        for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        r.headers[name] = std::string(field.value());
      }
      r.body = req.body();
      {
        std::lock_guard lock(mu_);
        r.index = static_cast<int>(requests_.size());
        requests_.push_back(r);
      }
      cv_.notify_all();
      Reply reply = script_(r);
      if (!reply.interim.empty()) {
        boost::asio::write(socket, boost::asio::buffer(reply.interim), ec);
        if (ec) return;
      }
      if (reply.hang) {
        std::unique_lock lock(mu_);
        cv_.wait(lock, [&] { return stopping_; });
        return;
      }
      http::response<http::string_body> res{static_cast<http::status>(reply.status), 11};
      res.set(http::field::content_type, "text/plain");
      for (const auto& [k, v] : reply.headers) res.set(k, v);
      res.body() = reply.body;
      res.keep_alive(req.keep_alive());
      res.prepare_payload();
      http::write(socket, res, ec);
      if (ec || !req.keep_alive()) return;
    }
  }

  Script script_;
  boost::asio::io_context ioc_;
  tcp::acceptor acceptor_;
  int port_ = 0;
  std::thread accept_thread_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;                  // guarded by mu_
  std::vector<int> fds_;                   // guarded by mu_
  std::vector<std::thread> conn_threads_;  // guarded by mu_ (joined after the accept thread)
  std::vector<Received> requests_;         // guarded by mu_
};

}  // namespace outbound::delivery::testing
