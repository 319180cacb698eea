#include "app/idle_unloader.h"

#include <algorithm>

#include "common/time_util.h"

namespace mw::app {

std::chrono::milliseconds IdleUnloader::UntilNextDeadline() const {
  std::optional<int64_t> next = gate_.NextDeadline();
  // At least once a minute: a deadline is only ever moved later by a new request.
  const int64_t wait_ms = next ? std::max<int64_t>(0, *next - MonotonicMillis()) : 60000;
  return std::chrono::milliseconds(std::min<int64_t>(wait_ms, 60000));
}

void IdleUnloader::UnloadDue() {
  for (const auto& name : gate_.DueForUnload(MonotonicMillis())) {
    unload_(name);
    gate_.EndUnload(name);
  }
}

}  // namespace mw::app
