// FitAndResidency: residency (SPEC §12). Several models stay loaded at once;
// before an attempt, idle ones are unloaded least recently used first when
// max_loaded_models is reached or the new model's estimate does not fit the
// free memory. The decision is serving::PlanEviction (pure); this file feeds
// it (last use and busy-ness from the ServingGate, memory from the
// supervisor's engine reports and the fit estimate) and carries it out.
#include <sstream>

#include "app/fit_and_residency.h"
#include "common/log.h"
#include "common/time_util.h"
#include "loadconfig/loadconfig.h"
#include "serving/residency.h"

namespace mw::app {
namespace {

constexpr int kPlanRounds = 5;  // a model that turns busy between plan and eviction: plan again

// Adds `sign` times what `loaded` holds on each device to `devices`' free
// memory: the engine's CPU share to RAM (the first device), a GPU's share
// to the GPU of that name; with gpus_only, the GPUs' shares only.
void AddUsage(std::vector<fit::Device>& devices, const LoadedModel& loaded, int sign, bool gpus_only = false) {
  for (const auto& d : loaded.devices) {
    if (gpus_only && d.kind == protocol::DeviceKind::kCpu) continue;
    const int64_t bytes = static_cast<int64_t>(d.memory_used) * sign;
    for (auto& device : devices) {
      const bool same = d.kind == protocol::DeviceKind::kCpu ? !device.gpu : (device.gpu && device.name == d.name);
      if (!same) continue;
      device.free_bytes = std::max<int64_t>(0, device.free_bytes + bytes);
      break;
    }
  }
}

int64_t MemoryUsed(const LoadedModel& loaded) {
  int64_t sum = 0;
  for (const auto& d : loaded.devices) sum += static_cast<int64_t>(d.memory_used);
  return sum;
}

std::string Join(const std::vector<std::string>& names) {
  std::string out;
  for (const auto& n : names) out += (out.empty() ? "" : ", ") + n;
  return out;
}

}  // namespace

bool FitAndResidency::IsBusy(const std::string& name) {
  const serving::ServingGate::Usage usage = gate_.UsageOf(name);
  return usage.in_engine > 0 || usage.waiting > 0 || usage.unloading || hooks_.load_under_way(name);
}

void FitAndResidency::AccountResidents(std::vector<fit::Device>& devices, const std::string& model, bool reclaim_idle) {
  for (const LoadedModel& loaded : supervisor_.Loaded()) {
    // The probe's GPU figures are from before any load: take off what is held there.
    AddUsage(devices, loaded, -1, /*gpus_only=*/true);
    if (reclaim_idle && loaded.model_name != model && !IsBusy(loaded.model_name)) AddUsage(devices, loaded, +1);
  }
}

std::string FitAndResidency::ResidencyNote(const std::string& model) {
  std::vector<std::string> idle, busy;
  for (const LoadedModel& loaded : supervisor_.Loaded()) {
    if (loaded.model_name == model) continue;
    (IsBusy(loaded.model_name) ? busy : idle).push_back(loaded.model_name);
  }
  if (idle.empty() && busy.empty()) return "No other model is loaded, so unloading cannot make room. ";
  std::string note;
  if (!idle.empty()) {
    note = "The free memory counts what unloading the idle loaded model(s) " + Join(idle) + " would free";
  } else {
    note = "No loaded model is idle, so none can be unloaded to make room";
  }
  if (!busy.empty()) note += "; " + Join(busy) + " (requests in flight) stay loaded";
  return note + ". ";
}

std::optional<api::LoadResult> FitAndResidency::MakeRoom(const ModelRecord& model, const LoadRequest& request, bool force) {
  const std::string& name = model.model_name;
  const int max_loaded = hooks_.config()->max_loaded_models;  // reloadable (SIGHUP)
  gate_.MarkUsed(name, MonotonicMillis());  // its load is a use: loads are in LRU order among themselves
  // The memory side: only for an unforced llama.cpp load with an estimate
  // (force_load skips the fit check, and a command engine has none).
  std::optional<fit::ModelShape> shape;
  std::optional<loadconfig::LlamaConfig> llama;
  if (!force && request.engine == EngineKind::kLlamaCpp && !request.model_path.empty()) {
    auto validated = loadconfig::ValidateLoadConfig(std::string(loadconfig::EngineName(loadconfig::Engine::kLlamaCpp)),
                                                    request.load_config_json);
    auto read = shapes_.ShapeOf(request.model_path);
    if (validated.ok() && validated->llama() != nullptr && read.ok()) {
      llama = *validated->llama();
      shape = *read;
    }
  }
  // The answer when the cap is reached and the models named are busy.
  auto models_busy = [&](const std::vector<std::string>& busy) {
    api::LoadResult result;
    result.kind = api::LoadResult::Kind::kModelsBusy;
    result.busy_models = busy;
    std::ostringstream message;
    message << "cannot load '" << name << "' now: max_loaded_models is " << max_loaded << " and "
            << (busy.size() == 1 ? "the loaded model " : "the loaded models ") << Join(busy)
            << (busy.size() == 1 ? " has" : " have") << " requests in flight, so none can be unloaded to "
            << "make room. Retry when a request has finished, unload a model (POST /api/orchestrate/unload), "
            << "or raise max_loaded_models in the server configuration (reloaded on SIGHUP).";
    result.message = message.str();
    result.model = hooks_.view(model);
    MW_LOG(kInfo, "load") << "model=" << name << " not loaded: max_loaded_models " << max_loaded
                          << " reached and the loaded models are busy (" << Join(busy) << ")";
    return std::optional<api::LoadResult>(std::move(result));
  };
  std::vector<std::string> spoilers;  // models that turned busy between a plan and its eviction
  bool cap_reached = false;
  for (int round = 0; round < kPlanRounds; ++round) {
    std::vector<LoadedModel> loaded = supervisor_.Loaded();
    std::erase_if(loaded, [&](const LoadedModel& m) { return m.model_name == name; });
    if (max_loaded <= 0 && !shape) return std::nullopt;  // no cap, no estimate: nothing to decide
    std::vector<serving::Resident> residents;
    for (const auto& m : loaded) {
      const serving::ServingGate::Usage usage = gate_.UsageOf(m.model_name);
      residents.push_back({m.model_name, usage.last_used.value_or(0), IsBusy(m.model_name)});
    }
    const std::vector<serving::Resident> idle = serving::IdleByLeastRecentUse(residents);
    std::vector<fit::Device> now;
    if (shape) {
      now = FitDevices(name, /*reclaim_idle=*/false);
    }
    auto fits = [&](size_t n) {
      if (!shape) return true;
      std::vector<fit::Device> devices = now;
      for (size_t i = 0; i < n && i < idle.size(); ++i) {
        for (const auto& m : loaded) {
          if (m.model_name == idle[i].name) AddUsage(devices, m, +1);
        }
      }
      return fit::EstimateMemory(*shape, *llama, devices).fits;
    };
    const serving::EvictionPlan plan = serving::PlanEviction(residents, max_loaded, fits);
    if (plan.outcome == serving::EvictionPlan::Outcome::kCapBusy) return models_busy(plan.busy);
    if (plan.outcome == serving::EvictionPlan::Outcome::kNoFit) {
      // The fit check counted every idle model as free and let it through:
      // memory changed since. Only the cap's evictions; the attempt decides.
      MW_LOG(kInfo, "load") << "model=" << name << " does not fit even with every idle model unloaded; "
                            << "evicting only what max_loaded_models requires";
    }
    const size_t for_cap = max_loaded > 0 && loaded.size() + 1 > static_cast<size_t>(max_loaded)
                               ? loaded.size() + 1 - static_cast<size_t>(max_loaded)
                               : 0;
    cap_reached = for_cap > 0;
    // Claim every victim first: one that turned busy since the plan spoils it.
    std::vector<std::string> claimed;
    bool spoiled = false;
    for (const auto& victim : plan.evict) {
      if (!gate_.TryBeginUnload(victim)) {
        spoiled = true;
        spoilers = {victim};
        break;
      }
      claimed.push_back(victim);
    }
    if (spoiled) {
      for (const auto& victim : claimed) gate_.EndUnload(victim);
      continue;
    }
    for (size_t i = 0; i < claimed.size(); ++i) {
      const std::string& victim = claimed[i];
      const char* reason = i < for_cap ? "max_loaded_models" : "memory";
      MW_LOG(kInfo, "load") << "model=" << victim << " evicted (idle, least recently used) to make room for '" << name
                            << "': " << (i < for_cap ? "max_loaded_models " + std::to_string(max_loaded) + " reached"
                                                     : std::string("its estimate did not fit the free memory"));
      Status unloaded = hooks_.evict(victim);  // logs, events (the usual unload event), runtime state
      if (!unloaded.ok()) {
        MW_LOG(kWarn, "load") << "model=" << victim << " eviction: " << unloaded.ToString();
      } else {
        metrics_.RecordEviction(reason);
      }
      gate_.EndUnload(victim);
    }
    return std::nullopt;
  }
  // New requests kept arriving for the models chosen: they are busy now.
  if (cap_reached) return models_busy(spoilers);
  MW_LOG(kInfo, "load") << "model=" << name << " loads without evicting: the idle models turned busy";
  return std::nullopt;
}

void FitAndResidency::FillResidency(api::ServerStatus& status) {
  status.max_loaded_models = hooks_.config()->max_loaded_models;
  const std::vector<fit::Device> devices = FitDevices("", /*reclaim_idle=*/false);
  for (const auto& d : devices) status.memory.free += d.free_bytes;
  std::map<std::string, LoadedModel> loaded;
  for (LoadedModel& m : supervisor_.Loaded()) loaded.emplace(m.model_name, std::move(m));
  for (api::ModelView& view : status.loaded_models) {
    auto it = loaded.find(view.model_name);
    if (it == loaded.end()) continue;
    api::ResidencyView r;
    r.memory_used = MemoryUsed(it->second);
    status.memory.in_use += r.memory_used;
    const serving::ServingGate::Usage usage = gate_.UsageOf(view.model_name);
    if (usage.last_used) r.last_used_at = Iso8601FromUnixMillis(MonotonicToUnixMillis(*usage.last_used));
    if (usage.idle_deadline) r.keep_alive_until = Iso8601FromUnixMillis(MonotonicToUnixMillis(*usage.idle_deadline));
    r.requests_in_flight = usage.in_engine + usage.waiting;
    view.residency = std::move(r);
  }
}

}  // namespace mw::app
