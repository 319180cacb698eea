// app/pull_service.h: api::PullApi over hub::PullManager and the ModelApi
// (SPEC §17). A finished pull registers its model through ModelApi
// (`unknown`, hf_path and file_path, cache_location), and with `test` loads it
// once and unloads it; Scan() registers every GGUF of the configured
// locations (plain files and Hugging Face caches) that no model uses yet,
// named after the file (a Hugging Face file: after its repository), a taken
// name suffixed -2, -3, ...
// Hugging Face settings: hf_endpoint (else $HF_ENDPOINT, else the hub),
// hf_token (else $HF_TOKEN), $HF_HUB_OFFLINE=1: the cache only.
// Thread-safe; destroy it before the ModelApi it uses.
#pragma once

#include <functional>
#include <memory>
#include <mutex>

#include "api/model_api.h"
#include "api/pull_api.h"
#include "config/config.h"
#include "hub/pull_manager.h"

namespace mw::app {

// The hub options of a configuration and the environment (HF_ENDPOINT,
// HF_TOKEN, HF_HUB_OFFLINE).
hub::HubOptions HubOptionsFrom(const config::Config& config);

class PullService : public api::PullApi {
 public:
  PullService(api::ModelApi& models, const config::Config& config);
  ~PullService() override;

  Result<hub::PullView> StartPull(const hub::PullSpec& spec) override;
  std::vector<hub::PullView> ListPulls() override;
  Result<hub::PullView> CancelPull(const std::string& id) override;
  Result<std::vector<api::ScannedModel>> Scan() override;
  void SetListener(std::function<void(const hub::PullView&)> listener) override;

 private:
  api::ModelApi& models_;
  std::vector<config::Location> locations_;
  std::mutex listener_mu_;
  std::function<void(const hub::PullView&)> listener_;
  std::mutex scan_mu_;
  std::unique_ptr<hub::PullManager> manager_;  // last: its threads use the members above
};

}  // namespace mw::app
