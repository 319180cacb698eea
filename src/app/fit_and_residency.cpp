// FitAndResidency: the memory estimate before a load (SPEC §12): the fit shown
// by GET /api/models/{name} and the refusal of a load that cannot fit.

#include <nlohmann/json.hpp>

#include <algorithm>
#include <fstream>
#include <sstream>

#include "app/host_memory.h"
#include "app/fit_and_residency.h"
#include "common/log.h"
#include "fit/fit_suggest.h"
#include "loadconfig/loadconfig.h"

namespace mw::app {
namespace {

constexpr int64_t kMiB = 1024 * 1024;
constexpr int64_t kGpuMarginMiB = 1024;
constexpr int64_t kRamMarginMiB = 512;
// auto_fit lowers an unset n_ctx no further than min(this, training context)
// (llama.cpp's --fit stops at 4096 too: common.h fit_params_min_ctx).
constexpr int64_t kAutoFitMinCtx = 4096;

fit::ModelShape ToShape(const protocol::MetadataMessage& m) {
  fit::ModelShape s;
  s.layers = m.block_count;
  s.embedding = m.embedding_length;
  s.heads = m.head_count;
  s.kv_heads = m.head_count_kv;
  s.key_length = m.key_length;
  s.value_length = m.value_length;
  s.vocab = m.vocab_size;
  s.context_train = m.context_length;
  s.tensor_bytes = m.tensor_bytes;
  return s;
}

std::string MiB(int64_t bytes) { return std::to_string((bytes + kMiB - 1) / kMiB) + " MiB"; }

}  // namespace

FitAndResidency::FitAndResidency(Supervisor& supervisor, serving::ServingGate& gate, EnvironmentWatch& environment,
                                 metrics::Metrics& metrics, FitAndResidencyHooks hooks)
    : supervisor_(supervisor), gate_(gate), environment_(environment), metrics_(metrics), hooks_(std::move(hooks)) {}

std::vector<fit::Device> FitAndResidency::FitDevices(const std::string& model, bool reclaim_idle) {
  const auto config = hooks_.config();
  std::vector<fit::Device> out;
  fit::Device ram{"CPU", false, 0, config->memory_margin_mib.value_or(kRamMarginMiB) * kMiB};
  {
    const std::vector<api::DeviceInfo> devices = environment_.DevicesNow().devices;
    for (const auto& d : devices) {
      if (d.kind == "cpu") {
        ram.name = d.name;
        ram.free_bytes = d.memory_free;
      } else if (d.kind == "gpu") {
        // The free memory the startup probe saw.
        // By the engine's device id ("Vulkan0"): what `devices` and the loaded report name.
        out.push_back({d.id.empty() ? d.name : d.id, true, d.memory_free,
                       config->memory_margin_mib.value_or(kGpuMarginMiB) * kMiB});
      }
    }
  }
  if (auto available = AvailableRam()) ram.free_bytes = *available;
  out.insert(out.begin(), ram);
  AccountResidents(out, model, reclaim_idle);
  return out;
}

Result<ShapeCache::Answer> FitAndResidency::InspectShape(const std::string& path) {
  // The worker reads the header (gguf.h lives there); no tensor data is read.
  ShapeCache::Answer cached;
  ASSIGN_OR_RETURN(protocol::Message answer_value,
                   supervisor_.RunWorkerCommand({"inspect", path}, std::chrono::seconds(10)));
  const protocol::Message* answer = &answer_value;
  if (const auto* metadata = std::get_if<protocol::MetadataMessage>(answer)) {
    cached.shape = ToShape(*metadata);
  } else if (const auto* error = std::get_if<protocol::ErrorMessage>(answer)) {
    cached.error = error->message;
  } else {
    cached.error = "the worker's inspect answered with an unexpected message";
  }
  return cached;
}

Result<std::optional<api::FitView>> FitAndResidency::Estimate(const LoadRequest& request) {
  if (request.engine != EngineKind::kLlamaCpp || request.model_path.empty()) return std::optional<api::FitView>();
  auto validated = loadconfig::ValidateLoadConfig(std::string(loadconfig::EngineName(loadconfig::Engine::kLlamaCpp)),
                                                  request.load_config_json);
  if (!validated.ok() || validated->llama() == nullptr) return std::optional<api::FitView>();
  ASSIGN_OR_RETURN(fit::ModelShape shape, shapes_.ShapeOf(request.model_path));
  // Free after unloading what may be evicted (SPEC §12, MakeRoom).
  const std::vector<fit::Device> devices = FitDevices(request.model_name, /*reclaim_idle=*/true);
  const fit::Estimate e = fit::EstimateMemory(shape, *validated->llama(), devices);
  api::FitView view;
  view.estimate_bytes = e.total;
  view.n_ctx = e.n_ctx;
  for (const auto& d : e.per_device) view.per_device.push_back({d.name, d.bytes, d.free_bytes});
  view.weights = e.weights;
  view.kv_cache = e.kv_cache;
  view.compute = e.compute;
  view.fits = e.fits;
  if (!e.fits) {
    view.reason = e.reason;
    view.largest_fitting_ctx = fit::SuggestedCtx(shape, *validated->llama(), devices);
  }
  return std::optional<api::FitView>(std::move(view));
}

std::optional<api::LoadResult> FitAndResidency::RefuseIfItCannotFit(const ModelRecord& model, const LoadRequest& request) {
  auto estimate = Estimate(request);
  if (!estimate.ok() || !*estimate || (*estimate)->fits) {
    // No estimate (unreadable header, no shape): the load itself will tell.
    return std::nullopt;
  }
  const api::FitView& fit = **estimate;
  api::LoadResult result;
  result.kind = api::LoadResult::Kind::kInsufficientMemory;
  std::ostringstream message;
  message << "model '" << model.model_name << "' would not fit: it " << *fit.reason << ". Nothing was started. " << ResidencyNote(model.model_name);
  if (fit.largest_fitting_ctx) {
    message << "It would fit with load_config n_ctx " << *fit.largest_fitting_ctx << " (now " << fit.n_ctx << ")";
  } else {
    message << "No n_ctx makes it fit on this machine's free memory";
  }
  message << "; load it with force_load=true to try anyway.";
  result.message = message.str();
  result.model = hooks_.view(model);
  result.model.fit = fit;
  MW_LOG(kInfo, "load") << "model=" << model.model_name << " refused before any attempt: estimate "
                        << MiB(fit.estimate_bytes) << ", " << *fit.reason;
  return result;
}

}  // namespace mw::app

namespace mw::app {
namespace {

// Which computed fix a classification calls for (SPEC §11).
fit::FailureKind FailureKindOf(const Classification& c) {
  if (c.pattern_id == "flash_attention.quantized_v_cache") return fit::FailureKind::kQuantizedVCache;
  if (c.category == CrashCategory::kOutOfMemory) return fit::FailureKind::kOutOfMemory;
  if (c.category == CrashCategory::kFlashAttention) return fit::FailureKind::kFlashAttention;
  return fit::FailureKind::kOther;
}

void SetChange(const fit::Change& change, nlohmann::json& j) {
  if (change.n_gpu_layers) j["n_gpu_layers"] = *change.n_gpu_layers;
  if (change.n_ctx) j["n_ctx"] = *change.n_ctx;
  if (change.flash_attn) j["flash_attn"] = std::string(loadconfig::FlashAttnName(*change.flash_attn));
  if (change.cache_type_v) j["cache_type_v"] = std::string(loadconfig::CacheTypeName(*change.cache_type_v));
}

nlohmann::json ObjectOf(const std::string& text) {
  nlohmann::json j = nlohmann::json::parse(text.empty() ? "{}" : text, nullptr, false);
  return j.is_object() ? j : nlohmann::json();
}

}  // namespace

std::string FitAndResidency::ApplyAutoFit(LoadRequest& request) {
  if (!hooks_.config()->auto_fit || request.engine != EngineKind::kLlamaCpp || request.model_path.empty()) return "";
  auto validated = loadconfig::ValidateLoadConfig(std::string(loadconfig::EngineName(loadconfig::Engine::kLlamaCpp)),
                                                  request.load_config_json);
  if (!validated.ok() || validated->llama() == nullptr) return "";
  auto shape = shapes_.ShapeOf(request.model_path);
  if (!shape.ok()) return "";  // no estimate: the load itself will tell
  const int64_t floor = shape->context_train > 0 ? std::min<int64_t>(kAutoFitMinCtx, shape->context_train)
                                                 : kAutoFitMinCtx;
  const fit::Change change = fit::FitUnset(*shape, *validated->llama(),
                                               FitDevices(request.model_name, /*reclaim_idle=*/true), floor);
  nlohmann::json j = ObjectOf(request.load_config_json);
  if (change.empty() || !j.is_object()) return "";
  SetChange(change, j);
  request.load_config_json = j.dump();
  // Reported: what was lowered below what unset means (all layers on the
  // GPUs, the training context).
  nlohmann::json adjusted = nlohmann::json::object();
  if (change.n_gpu_layers) adjusted["n_gpu_layers"] = *change.n_gpu_layers;
  if (change.n_ctx && static_cast<int64_t>(*change.n_ctx) < shape->context_train) adjusted["n_ctx"] = *change.n_ctx;
  if (adjusted.empty()) return "";
  return adjusted.dump();
}

std::string FitAndResidency::SuggestLoadConfig(const ModelRecord& model, const LoadRequest& request,
                                            const Classification& c) {
  const nlohmann::json before = ObjectOf(request.load_config_json);
  if (!before.is_object()) return "";
  nlohmann::json j = before;
  // The retry runs at once, without making room: only what is free now.
  const std::vector<fit::Device> devices = FitDevices(model.model_name, /*reclaim_idle=*/false);
  const bool has_gpu = std::any_of(devices.begin(), devices.end(), [](const fit::Device& d) { return d.gpu; });
  const fit::FailureKind kind = FailureKindOf(c);
  std::optional<fit::Change> computed;
  if (kind != fit::FailureKind::kOther && request.engine == EngineKind::kLlamaCpp) {
    auto validated = loadconfig::ValidateLoadConfig(
        std::string(loadconfig::EngineName(loadconfig::Engine::kLlamaCpp)), request.load_config_json);
    if (validated.ok() && validated->llama() != nullptr) {
      auto shape = request.model_path.empty() ? Result<fit::ModelShape>(NotFoundError("no file"))
                                              : shapes_.ShapeOf(request.model_path);
      // Without the file's shape an out-of-memory halves the context (the
      // estimate of an empty shape always fits); the rest needs no shape.
      computed = fit::SuggestFix(kind, shape.ok() ? *shape : fit::ModelShape{}, *validated->llama(), devices);
    }
  }
  if (computed) {
    if (computed->empty()) return "";  // nothing the estimate knows would help
    SetChange(*computed, j);
  } else {
    // The catalog's fixed suggestion, less what cannot help on this machine.
    for (const auto& s : c.suggested_load_config) {
      if (s.key == "n_gpu_layers" && !has_gpu) continue;
      std::visit([&](const auto& v) { j[s.key] = v; }, s.value);
    }
  }
  if (j == before) return "";
  std::string merged = j.dump();
  // Offered or tried only when valid for the model's engine (a `command`
  // engine has no llama.cpp keys; a key may conflict with one the user set).
  if (!loadconfig::ValidateLoadConfig(model.engine, merged).ok()) return "";
  return merged;
}

}  // namespace mw::app
