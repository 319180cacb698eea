// app/cold_request.h: the request that finds its model unloaded verifies
// the load with its own first token (SPEC §16; a collaborator of
// ModelService's load path and /v1 admission).
//
// Without it an on-demand load ran a verification decode of its own, and the
// request that asked for the load then ran its prompt: two decodes before
// the first token. With it:
//
//   request ──Open──> LoadDirector::Load submits the job ──job: Arm(name)──> RunLoad: Take(name)
//      │                                                  worker --verify request
//      │<── Ready(pid, endpoint) ── on_ready (the worker's `ready`: engine listens)
//      └─ forwarded to the engine; the attempt stays open (`testing`) until
//         Supervisor::Verify(first_token): the answer's first event with data
//         (InferenceLease::FirstToken; not the 200 head, which llama.cpp
//         sends before the prompt runs) verifies the load; an answer without one (client gone, an error answer) makes
//         the worker run its own short decode; a crash before either is a
//         failed load, and the request answers with that load's classified
//         failure (LoadFailure).
//
// Only the job this request submitted claims it (a request that joins a load
// in progress waits for that load as before), and only its first run: an
// auto_fix retry verifies with its own decode. An explicit load never has
// one. Thread-safe: each object has its own lock.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "api/model_api.h"
#include "common/status.h"
#include "supervisor/supervisor.h"

namespace mw::app {

class ColdRequest {
 public:
  using JobResult = std::shared_future<Result<api::LoadResult>>;

  // The load job's side (its thread). adjusted_json: what auto_fit chose for
  // this attempt (LoadResult::adjusted_json), for the request's
  // X-Modelwarden-Adjusted header as a normal load's request gets it. (An
  // auto_fix retry never hands its request over at `ready`: only the first
  // run claims it, so X-Modelwarden-Auto-Fix comes with the job's result.)
  void Ready(int pid, const EngineEndpoint& endpoint, std::string adjusted_json = {});
  void JobEnded();

  // The request's side: waits until the engine is ready (true: pid() and
  // endpoint() are set) or the load job has ended without that (false: its
  // result is the answer). `result` is polled too, for a job that never ran.
  bool WaitReady(const JobResult& result);
  bool ready() const;
  // kLoaded with the ready engine (and the attempt's adjusted_json): what
  // the request is admitted with.
  api::LoadResult ReadyResult() const;
  int pid() const;
  EngineEndpoint endpoint() const;

  // After WaitReady returned true. The load's failure (kFailed), once the
  // job ended within timeout_ms; nullopt if it succeeded or is still running.
  std::optional<api::LoadResult> LoadFailure(int64_t timeout_ms) const;

 private:
  mutable std::mutex mu_;
  std::condition_variable changed_;
  bool ready_ = false;
  bool ended_ = false;
  int pid_ = 0;
  EngineEndpoint endpoint_;
  std::string adjusted_json_;
  JobResult result_;
};

// Model name -> the cold request armed for its running load job.
class ColdRequests {
 public:
  // While `armed` lives, the job of `name` may claim `cold` (nullptr: none);
  // its end tells the request (JobEnded).
  class Armed {
   public:
    Armed(ColdRequests& owner, std::string name, std::shared_ptr<ColdRequest> cold);
    ~Armed();
    Armed(const Armed&) = delete;
    Armed& operator=(const Armed&) = delete;

   private:
    ColdRequests& owner_;
    std::string name_;
    std::shared_ptr<ColdRequest> cold_;
  };
  // The cold request armed for `name`, once (nullptr afterwards or if none).
  std::shared_ptr<ColdRequest> Take(const std::string& name);

 private:
  std::mutex mu_;
  std::map<std::string, std::shared_ptr<ColdRequest>> armed_;
};

// For a load job's run of `request`: claims the cold request armed for its
// model, if any, when the load can be verified by it (a llama.cpp engine,
// verify "decode"): then request->verify becomes "request" and
// observer->on_ready tells the request where the engine listens. Returns
// whether it did; else the load runs as it is.
// adjusted_json: the attempt's auto_fit choices (ColdRequest::Ready).
bool ClaimColdRequest(ColdRequests& loads, LoadRequest* request, LoadObserver* observer,
                      const std::string& adjusted_json);

}  // namespace mw::app
