#include "store/sqlite/secrets_key.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace outbound::store::sqlite {
namespace {

core::Error KeyFileError(const std::string& message) {
  core::Error e = core::Error::Internal(message);
  e.code = "invalid_secrets_key";
  return e;
}

}  // namespace

core::Result<core::SecretBox> LoadSecretsKey(const std::optional<std::string>& configured,
                                             const std::string& key_path) {
  if (configured) return core::SecretBox::FromBase64Key(*configured);
  int fd = ::open(key_path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0 && errno == ENOENT) {
    // O_EXCL: of two processes racing here, one writes and both then read the same key.
    std::string text = core::SecretBox::NewBase64Key() + "\n";
    int wfd = ::open(key_path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (wfd >= 0) {
      bool ok = ::write(wfd, text.data(), text.size()) == static_cast<ssize_t>(text.size()) &&
                ::fsync(wfd) == 0;
      ::close(wfd);
      if (!ok) {
        ::unlink(key_path.c_str());
        return core::Fail(KeyFileError("cannot write the secrets key file " + key_path));
      }
    } else if (errno != EEXIST) {
      return core::Fail(KeyFileError("cannot create the secrets key file " + key_path + ": " +
                                     std::strerror(errno)));
    }
    fd = ::open(key_path.c_str(), O_RDONLY | O_CLOEXEC);
  }
  if (fd < 0) {
    return core::Fail(
        KeyFileError("cannot read the secrets key file " + key_path + ": " + std::strerror(errno)));
  }
  std::string text;
  char buf[256];
  ssize_t n = 0;
  while ((n = ::read(fd, buf, sizeof buf)) > 0) text.append(buf, static_cast<std::size_t>(n));
  ::close(fd);
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r' || text.back() == ' ')) {
    text.pop_back();
  }
  auto box = core::SecretBox::FromBase64Key(text);
  if (!box) {
    return core::Fail(
        KeyFileError("the secrets key file " + key_path + " does not hold a base64 32-byte key"));
  }
  return box;
}

}  // namespace outbound::store::sqlite
