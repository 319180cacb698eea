#include "serving/residency.h"

#include <algorithm>

namespace mw::serving {

std::vector<Resident> IdleByLeastRecentUse(std::vector<Resident> loaded) {
  std::erase_if(loaded, [](const Resident& r) { return r.busy; });
  std::sort(loaded.begin(), loaded.end(), [](const Resident& a, const Resident& b) {
    return a.last_used_ms != b.last_used_ms ? a.last_used_ms < b.last_used_ms : a.name < b.name;
  });
  return loaded;
}

EvictionPlan PlanEviction(std::vector<Resident> loaded, int max_loaded, const std::function<bool(size_t)>& fits) {
  EvictionPlan plan;
  for (const auto& r : loaded) {
    if (r.busy) plan.busy.push_back(r.name);
  }
  std::sort(plan.busy.begin(), plan.busy.end());
  const size_t total = loaded.size();
  const std::vector<Resident> idle = IdleByLeastRecentUse(std::move(loaded));
  plan.idle = idle.size();
  size_t for_cap = 0;
  if (max_loaded > 0 && total + 1 > static_cast<size_t>(max_loaded)) for_cap = total + 1 - static_cast<size_t>(max_loaded);
  if (for_cap > idle.size()) {
    plan.outcome = EvictionPlan::Outcome::kCapBusy;
    return plan;
  }
  size_t n = for_cap;
  while (!fits(n)) {
    if (n == idle.size()) {
      plan.outcome = EvictionPlan::Outcome::kNoFit;
      n = for_cap;
      break;
    }
    ++n;
  }
  for (size_t i = 0; i < n; ++i) plan.evict.push_back(idle[i].name);
  return plan;
}

}  // namespace mw::serving
