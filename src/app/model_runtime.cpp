#include "app/model_runtime.h"

#include <chrono>

#include "common/time_util.h"

namespace mw::app {

ModelRuntime ModelRuntimeTable::Get(const std::string& name) const {
  std::lock_guard lock(mu_);
  auto it = models_.find(name);
  return it == models_.end() ? ModelRuntime{} : it->second;
}

void ModelRuntimeTable::SetLoadState(const std::string& name, api::LoadState state, std::optional<double> progress) {
  {
    std::lock_guard lock(mu_);
    ModelRuntime& rt = models_[name];
    rt.state = state;
    rt.progress = progress;
  }
  changed_.notify_all();
}

void ModelRuntimeTable::QueuedJobDropped(const std::string& name) {
  std::lock_guard lock(mu_);
  ModelRuntime& rt = models_[name];
  if (rt.state == api::LoadState::kQueued) rt.state = api::LoadState::kIdle;
}

void ModelRuntimeTable::SetLastError(const std::string& name, std::optional<std::string> error) {
  std::lock_guard lock(mu_);
  models_[name].last_error = std::move(error);
}

void ModelRuntimeTable::BeginJob(const std::string& name) {
  {
    std::lock_guard lock(mu_);
    ModelRuntime& rt = models_[name];
    rt.phase = LoadPhase::kStarting;
    rt.cancel_requested = false;
  }
  changed_.notify_all();
}

bool ModelRuntimeTable::ProcessStarting(const std::string& name) {
  std::lock_guard lock(mu_);
  ModelRuntime& rt = models_[name];
  // Still kStarting until ProcessStarted: an unload keeps waiting, and then
  // finds the process to cancel (or the job ended).
  return !rt.cancel_requested;
}

void ModelRuntimeTable::ProcessStarted(const std::string& name) {
  {
    std::lock_guard lock(mu_);
    models_[name].phase = LoadPhase::kRunning;
  }
  changed_.notify_all();
}

std::optional<RunningEngine> ModelRuntimeTable::EndJob(const std::string& name, const EngineFinder& find_engine,
                                                        std::optional<std::string> error, bool keep_error) {
  std::optional<RunningEngine> loaded;
  {
    std::lock_guard lock(mu_);
    ModelRuntime& rt = models_[name];
    rt.phase = LoadPhase::kNone;
    rt.cancel_requested = false;
    if (find_engine) loaded = find_engine();
    if (loaded && loaded->pid == rt.ended_pid) loaded.reset();  // its end was handled before the job ended
    rt.state = loaded ? api::LoadState::kLoaded : api::LoadState::kIdle;
    rt.progress = loaded ? std::optional<double>(1.0) : std::nullopt;
    rt.engine = loaded;
    if (loaded) {
      rt.last_error.reset();
    } else if (error && !(keep_error && rt.last_error)) {
      rt.last_error = std::move(error);
    }
  }
  changed_.notify_all();
  return loaded;
}

void ModelRuntimeTable::EndJobWithoutAttempt(const std::string& name) {
  {
    std::lock_guard lock(mu_);
    ModelRuntime& rt = models_[name];
    rt.phase = LoadPhase::kNone;
    rt.cancel_requested = false;
  }
  changed_.notify_all();
}

void ModelRuntimeTable::ProcessEnded(const std::string& name) {
  {
    std::lock_guard lock(mu_);
    models_[name].phase = LoadPhase::kStarting;
  }
  changed_.notify_all();
}

bool ModelRuntimeTable::CancelStartingJob(const std::string& name, int64_t deadline_ms,
                                          const std::function<void()>& on_wait) {
  std::unique_lock lock(mu_);
  auto starting = [&] {
    auto it = models_.find(name);
    return it != models_.end() && it->second.phase == LoadPhase::kStarting;
  };
  if (!starting()) return true;
  models_[name].cancel_requested = true;
  lock.unlock();
  if (on_wait) on_wait();
  lock.lock();
  const auto left = std::chrono::milliseconds(std::max<int64_t>(0, deadline_ms - MonotonicMillis()));
  return changed_.wait_for(lock, left, [&] { return !starting(); });
}

void ModelRuntimeTable::MarkNotLoaded(const std::string& name, std::optional<std::string> reason, int pid) {
  {
    std::lock_guard lock(mu_);
    ModelRuntime& rt = models_[name];
    if (pid != 0) rt.ended_pid = pid;
    if (rt.state == api::LoadState::kLoaded) {
      rt.state = api::LoadState::kIdle;
      rt.progress.reset();
    }
    rt.engine.reset();
    rt.slots.idle_deadline.reset();
    if (reason) rt.last_error = std::move(reason);
  }
  changed_.notify_all();
}

void ModelRuntimeTable::MarkAllNotLoaded() {
  {
    std::lock_guard lock(mu_);
    for (auto& [name, rt] : models_) {
      if (rt.state == api::LoadState::kLoaded) rt.state = api::LoadState::kIdle;
      rt.engine.reset();
      rt.slots.idle_deadline.reset();
    }
  }
  changed_.notify_all();
}

void ModelRuntimeTable::Erase(const std::string& name) {
  std::lock_guard lock(mu_);
  auto it = models_.find(name);
  if (it == models_.end()) return;
  const serving::ModelSlots slots = it->second.slots;
  if (slots.in_engine == 0 && slots.waiting == 0) {
    models_.erase(it);
  } else {
    it->second = ModelRuntime{};
    it->second.slots = slots;
  }
}

serving::ModelSlots* ModelRuntimeTable::FindSlots(const std::string& name) {
  auto it = models_.find(name);
  return it == models_.end() ? nullptr : &it->second.slots;
}

void ModelRuntimeTable::ForEachSlots(const std::function<void(const std::string&, serving::ModelSlots&)>& fn) {
  for (auto& [name, rt] : models_) fn(name, rt.slots);
}

}  // namespace mw::app
