#include "app/pull_service.h"

#include <cstdlib>
#include <set>
#include <system_error>

#include "common/log.h"
#include "hub/hf_cache.h"

namespace mw::app {
namespace fs = std::filesystem;
namespace {

std::string Env(const char* name) {
  const char* v = std::getenv(name);
  return v ? v : "";
}

fs::path Canonical(const fs::path& p) {
  std::error_code ec;
  fs::path c = fs::weakly_canonical(p, ec);
  return ec ? p : c;
}

}  // namespace

hub::HubOptions HubOptionsFrom(const config::Config& config) {
  hub::HubOptions options;
  if (!config.hf_endpoint.empty()) options.endpoint = config.hf_endpoint;
  else if (!Env("HF_ENDPOINT").empty()) options.endpoint = Env("HF_ENDPOINT");
  options.token = !config.hf_token.empty() ? config.hf_token : Env("HF_TOKEN");
  const std::string offline = Env("HF_HUB_OFFLINE");
  options.offline = offline == "1" || offline == "true" || offline == "TRUE" || offline == "yes";
  return options;
}

PullService::PullService(api::ModelApi& models, const config::Config& config)
    : models_(models), locations_(config.locations) {
  hub::PullManager::Hooks hooks;
  hooks.location_root = [this](const std::string& name) -> Result<fs::path> {
    std::string known;
    for (const config::Location& l : locations_) {
      if (l.name == name) {
        std::error_code ec;
        fs::create_directories(l.path, ec);
        return Canonical(l.path);
      }
      known += (known.empty() ? "" : ", ") + l.name;
    }
    return InvalidArgumentError("unknown cache_location '" + name.substr(0, 200) + "'; configured: " + known);
  };
  hooks.check_name = [this](const std::string& name) -> Status {
    if (models_.GetModel(name).ok()) {
      return AlreadyExistsError("a model named '" + name + "' is registered already: give another model_name (--name)");
    }
    return Status::Ok();
  };
  hooks.register_model = [this](const hub::PullView& pull, const std::string& file_path) -> Status {
    api::RegisterRequest request;
    request.model_name = pull.model_name;
    request.hf_path = pull.hf_path;
    request.cache_location = pull.location;
    request.file_path = file_path;
    return models_.RegisterModel(request).status();
  };
  hooks.test_model = [this](const std::string& name) -> std::string {
    Result<api::LoadResult> load = models_.Load(name, /*force=*/false);
    if (load.ok() && (load->kind == api::LoadResult::Kind::kLoaded)) (void)models_.Unload(name);
    Result<api::ModelView> model = models_.GetModel(name);
    return model.ok() ? model->compatibility_status : "";
  };
  hooks.on_change = [this](const hub::PullView& pull) {
    std::lock_guard lock(listener_mu_);
    if (listener_) listener_(pull);
  };
  manager_ = std::make_unique<hub::PullManager>(HubOptionsFrom(config), std::move(hooks));
}

PullService::~PullService() { manager_.reset(); }

Result<hub::PullView> PullService::StartPull(const hub::PullSpec& spec) { return manager_->Start(spec); }

std::vector<hub::PullView> PullService::ListPulls() { return manager_->List(); }

Result<hub::PullView> PullService::CancelPull(const std::string& id) { return manager_->Cancel(id); }

void PullService::SetListener(std::function<void(const hub::PullView&)> listener) {
  std::lock_guard lock(listener_mu_);
  listener_ = std::move(listener);
}

Result<std::vector<api::ScannedModel>> PullService::Scan() {
  std::lock_guard scan(scan_mu_);
  ASSIGN_OR_RETURN(std::vector<api::ModelView> models, models_.ListModels());
  std::set<std::string> names;
  std::set<fs::path> used;  // canonical files of the registered models
  for (const api::ModelView& m : models) {
    names.insert(m.model_name);
    for (const config::Location& l : locations_) {
      if (l.name == m.cache_location && !m.file_path.empty()) used.insert(Canonical(l.path / m.file_path));
    }
  }
  std::vector<api::ScannedModel> added;
  for (const config::Location& l : locations_) {
    const fs::path root = Canonical(l.path);
    for (const hub::FoundGguf& f : hub::FindGgufFiles(root)) {
      if (!used.insert(Canonical(root / f.relative)).second) continue;
      std::string base = f.hf_path.empty() ? hub::ModelNameForFile(f.relative)
                                            : hub::ModelNameForFile(f.hf_path.substr(f.hf_path.find('/') + 1));
      std::string name = base;
      for (int n = 2; names.count(name); ++n) name = base + "-" + std::to_string(n);
      api::RegisterRequest request;
      request.model_name = name;
      request.hf_path = f.hf_path;
      request.cache_location = l.name;
      request.file_path = f.relative;
      Result<api::ModelView> r = models_.RegisterModel(request);
      if (!r.ok()) {
        MW_LOG(kWarn, "scan") << "not registered: " << (root / f.relative).string() << ": " << r.status().message();
        continue;
      }
      names.insert(name);
      added.push_back({name, l.name, f.relative, f.hf_path});
      MW_LOG(kInfo, "scan") << "registered " << name << " (" << l.name << ": " << f.relative << ")";
    }
  }
  return added;
}

}  // namespace mw::app
