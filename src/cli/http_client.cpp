#include "cli/http_client.h"

#include <curl/curl.h>

#include <mutex>

namespace outbound::cli {
namespace {

std::size_t Append(char* data, std::size_t size, std::size_t n, void* user) {
  static_cast<std::string*>(user)->append(data, size * n);
  return size * n;
}

void GlobalInit() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

}  // namespace

struct HttpClient::Impl {
  std::string base;
  std::string auth_header;
  CURL* curl = nullptr;
};

HttpClient::HttpClient(std::string base_url, const std::string& token)
    : impl_(std::make_unique<Impl>()) {
  GlobalInit();
  while (!base_url.empty() && base_url.back() == '/') base_url.pop_back();
  impl_->base = std::move(base_url);
  if (!token.empty()) impl_->auth_header = "Authorization: Bearer " + token;
  impl_->curl = curl_easy_init();
}

HttpClient::~HttpClient() {
  if (impl_->curl != nullptr) curl_easy_cleanup(impl_->curl);
}

HttpAnswer HttpClient::Call(std::string_view method, std::string_view path, std::string_view body) {
  HttpAnswer answer;
  CURL* c = impl_->curl;
  if (c == nullptr) {
    answer.error = "cannot initialise libcurl";
    return answer;
  }
  curl_easy_reset(c);
  std::string url = impl_->base + std::string(path);
  std::string verb(method);
  curl_slist* headers = nullptr;
  if (!impl_->auth_header.empty()) headers = curl_slist_append(headers, impl_->auth_header.c_str());
  headers = curl_slist_append(headers, "Accept: application/json");
  if (!body.empty()) headers = curl_slist_append(headers, "Content-Type: application/json");
  char error_buffer[CURL_ERROR_SIZE] = {0};
  curl_easy_setopt(c, CURLOPT_URL, url.c_str());
  curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, verb.c_str());
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, &Append);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &answer.body);
  curl_easy_setopt(c, CURLOPT_ERRORBUFFER, error_buffer);
  curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, 5000L);
  curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 60000L);
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  if (!body.empty()) {
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body.data());
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body.size()));
  } else if (verb == "POST" || verb == "PATCH" || verb == "PUT") {
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, "");
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(0));
  }
  CURLcode rc = curl_easy_perform(c);
  curl_slist_free_all(headers);
  if (rc != CURLE_OK) {
    // The error buffer names the host and the failure, never the headers (the token).
    answer.error = error_buffer[0] != '\0' ? error_buffer : curl_easy_strerror(rc);
    return answer;
  }
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &answer.status);
  return answer;
}

}  // namespace outbound::cli
