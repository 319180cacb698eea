#include "app/cold_request.h"

#include <chrono>
#include <utility>

namespace mw::app {
namespace {

// How often WaitReady looks at a job result nobody notifies about (a job
// cancelled before it ran: the queue answers without running it).
constexpr std::chrono::milliseconds kResultPoll{50};

}  // namespace

void ColdRequest::Ready(int pid, const EngineEndpoint& endpoint, std::string adjusted_json) {
  std::lock_guard<std::mutex> lock(mu_);
  ready_ = true;
  pid_ = pid;
  endpoint_ = endpoint;
  adjusted_json_ = std::move(adjusted_json);
  changed_.notify_all();
}

void ColdRequest::JobEnded() {
  std::lock_guard<std::mutex> lock(mu_);
  ended_ = true;
  changed_.notify_all();
}

bool ColdRequest::WaitReady(const JobResult& result) {
  std::unique_lock<std::mutex> lock(mu_);
  result_ = result;
  for (;;) {
    if (ready_) return true;
    if (ended_) return false;
    lock.unlock();
    const bool done = result.wait_for(std::chrono::milliseconds(0)) == std::future_status::ready;
    lock.lock();
    if (ready_) return true;
    if (done) return false;
    changed_.wait_for(lock, kResultPoll);
  }
}

bool ColdRequest::ready() const {
  std::lock_guard<std::mutex> lock(mu_);
  return ready_;
}

api::LoadResult ColdRequest::ReadyResult() const {
  std::lock_guard<std::mutex> lock(mu_);
  api::LoadResult result;
  result.kind = api::LoadResult::Kind::kLoaded;
  result.engine_pid = pid_;
  result.engine = endpoint_;
  result.adjusted_json = adjusted_json_;
  return result;
}

int ColdRequest::pid() const {
  std::lock_guard<std::mutex> lock(mu_);
  return pid_;
}

EngineEndpoint ColdRequest::endpoint() const {
  std::lock_guard<std::mutex> lock(mu_);
  return endpoint_;
}

std::optional<api::LoadResult> ColdRequest::LoadFailure(int64_t timeout_ms) const {
  JobResult result;
  {
    std::lock_guard<std::mutex> lock(mu_);
    result = result_;
  }
  if (!result.valid() || result.wait_for(std::chrono::milliseconds(timeout_ms)) != std::future_status::ready) {
    return std::nullopt;
  }
  const Result<api::LoadResult>& r = result.get();
  if (!r.ok() || r->kind != api::LoadResult::Kind::kFailed) return std::nullopt;
  return *r;
}

ColdRequests::Armed::Armed(ColdRequests& owner, std::string name, std::shared_ptr<ColdRequest> cold)
    : owner_(owner), name_(std::move(name)), cold_(std::move(cold)) {
  if (!cold_) return;
  std::lock_guard<std::mutex> lock(owner_.mu_);
  owner_.armed_[name_] = cold_;
}

ColdRequests::Armed::~Armed() {
  if (!cold_) return;
  {
    std::lock_guard<std::mutex> lock(owner_.mu_);
    auto it = owner_.armed_.find(name_);
    if (it != owner_.armed_.end() && it->second == cold_) owner_.armed_.erase(it);
  }
  cold_->JobEnded();
}

std::shared_ptr<ColdRequest> ColdRequests::Take(const std::string& name) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = armed_.find(name);
  if (it == armed_.end()) return nullptr;
  std::shared_ptr<ColdRequest> cold = std::move(it->second);
  armed_.erase(it);
  return cold;
}

bool ClaimColdRequest(ColdRequests& loads, LoadRequest* request, LoadObserver* observer,
                      const std::string& adjusted_json) {
  std::shared_ptr<ColdRequest> cold = loads.Take(request->model_name);
  if (!cold || request->engine != EngineKind::kLlamaCpp || request->verify != "decode") return false;
  request->verify = "request";
  observer->on_ready = [cold, adjusted_json](int pid, const EngineEndpoint& endpoint) {
    cold->Ready(pid, endpoint, adjusted_json);
  };
  return true;
}

}  // namespace mw::app
