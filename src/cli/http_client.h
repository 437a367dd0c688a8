// A blocking HTTP client for `outbound ctl`: one libcurl easy handle, reused (keep-alive), with
// the bearer token in a header and never in a URL or an error message.
#pragma once

#include <memory>
#include <string>
#include <string_view>

namespace outbound::cli {

struct HttpAnswer {
  long status = 0;    // 0: no answer (error says why)
  std::string body;   // as received
  std::string error;  // transport failure, empty otherwise
};

class HttpClient {
 public:
  // base_url: "http://127.0.0.1:8780"; token may be empty (no Authorization header).
  HttpClient(std::string base_url, const std::string& token);
  ~HttpClient();
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;

  // path starts with '/', may carry a query. body empty: no body (and no Content-Type).
  HttpAnswer Call(std::string_view method, std::string_view path, std::string_view body = {});

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace outbound::cli
