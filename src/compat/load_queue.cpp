#include "compat/load_queue.h"

namespace mw {

std::string_view ToString(LoadQueueState state) {
  switch (state) {
    case LoadQueueState::kQueued:
      return "queued";
    case LoadQueueState::kRunning:
      return "running";
    case LoadQueueState::kDone:
      return "done";
  }
  return "done";
}

}  // namespace mw
