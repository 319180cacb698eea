#include "app/host_memory.h"

#include <fstream>
#include <string>

namespace mw::app {

std::optional<int64_t> AvailableRam() {
  std::ifstream in("/proc/meminfo");
  std::string key;
  int64_t kib = 0;
  std::string unit;
  while (in >> key >> kib) {
    std::getline(in, unit);
    if (key == "MemAvailable:") return kib * 1024;
  }
  return std::nullopt;
}

}  // namespace mw::app
