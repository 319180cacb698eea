#include "api/socket_util.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cstdlib>
#include <functional>

namespace mw::api {
namespace {

int PortOf(const sockaddr_storage& addr) {
  if (addr.ss_family == AF_INET) return ntohs(reinterpret_cast<const sockaddr_in&>(addr).sin_port);
  if (addr.ss_family == AF_INET6) return ntohs(reinterpret_cast<const sockaddr_in6&>(addr).sin6_port);
  return -1;
}

int LocalPort(int fd) {
  sockaddr_storage addr{};
  socklen_t len = sizeof(addr);
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) return -1;
  return PortOf(addr);
}

// The first descriptor for which `match` holds, or -1.
int FindFd(const std::function<bool(int)>& match) {
  DIR* dir = ::opendir("/proc/self/fd");
  if (dir == nullptr) return -1;
  int found = -1;
  while (dirent* entry = ::readdir(dir)) {
    char* end = nullptr;
    long fd = std::strtol(entry->d_name, &end, 10);
    if (end == entry->d_name || *end != '\0' || fd == ::dirfd(dir)) continue;
    if (match(static_cast<int>(fd))) {
      found = static_cast<int>(fd);
      break;
    }
  }
  ::closedir(dir);
  return found;
}

}  // namespace

int FindConnectedSocket(int local_port, int remote_port) {
  if (local_port <= 0 || remote_port <= 0) return -1;
  return FindFd([&](int fd) {
    if (LocalPort(fd) != local_port) return false;
    sockaddr_storage peer{};
    socklen_t len = sizeof(peer);
    return ::getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &len) == 0 && PortOf(peer) == remote_port;
  });
}

bool RaiseListenBacklog(int port) {
  int fd = FindFd([&](int candidate) {
    int listening = 0;
    socklen_t len = sizeof(listening);
    return LocalPort(candidate) == port &&
           ::getsockopt(candidate, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) == 0 && listening == 1;
  });
  return fd >= 0 && ::listen(fd, SOMAXCONN) == 0;
}

}  // namespace mw::api
