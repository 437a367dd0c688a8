#include "core/thread_name.h"

#include <pthread.h>

#include <cstring>

namespace outbound::core {

void NameThisThread(const char* name) noexcept {
  char buf[16];
  std::strncpy(buf, name, sizeof buf - 1);
  buf[sizeof buf - 1] = '\0';
  (void)pthread_setname_np(pthread_self(), buf);
}

}  // namespace outbound::core
