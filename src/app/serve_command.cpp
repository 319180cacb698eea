#include "app/serve_command.h"

#include <pthread.h>
#include <signal.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <iostream>
#include <mutex>
#include <thread>

#include "api/http_server.h"
#include "app/model_service.h"
#include "common/log.h"
#include "common/time_util.h"
#include "compat/crash_classifier.h"
#include "compat/state_machine.h"
#include "config/config.h"
#include "registry/registry.h"
#include "supervisor/supervisor.h"

#ifndef MW_VERSION
#define MW_VERSION "0.0.0"
#endif

namespace mw::app {
namespace {

int Fail(const std::string& what, const Status& status) {
  std::cerr << "modelwarden serve: " << what << ": " << status.message() << "\n";
  return 1;
}

// Blocks the stop signals in every thread (threads inherit the mask), so that
// one dedicated thread receives them with sigwait. Children get an empty mask
// from the supervisor's spawn.
sigset_t BlockStopSignals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  signal(SIGPIPE, SIG_IGN);  // a client that hangs up must not kill the server
  return set;
}

void ProbeDevices(Supervisor& supervisor, ModelService& service) {
  auto answer = supervisor.RunWorkerCommand({"probe"}, std::chrono::seconds(30));
  if (!answer.ok()) {
    MW_LOG(kWarn, "serve") << "device probe failed: " << answer.status().ToString();
    service.SetDevices({}, "device probe failed: " + answer.status().message());
    return;
  }
  if (const auto* probe = std::get_if<protocol::ProbeMessage>(&*answer)) {
    std::vector<api::DeviceInfo> devices;
    for (const auto& d : probe->devices) {
      devices.push_back({d.description.empty() ? d.name : d.name + " (" + d.description + ")",
                         std::string(protocol::DeviceKindName(d.kind)), static_cast<int64_t>(d.memory_total),
                         static_cast<int64_t>(d.memory_free)});
    }
    MW_LOG(kInfo, "serve") << "device probe: " << devices.size() << " device(s)";
    service.SetDevices(std::move(devices), "");
  } else if (const auto* error = std::get_if<protocol::ErrorMessage>(&*answer)) {
    service.SetDevices({}, "device probe failed: " + error->message);
  } else {
    service.SetDevices({}, "device probe answered with an unexpected message");
  }
}

}  // namespace

int RunServe(const std::vector<std::string>& args) {
  auto flags = config::ParseServeFlags(args);
  if (!flags.ok()) {
    std::cerr << "modelwarden serve: " << flags.status().message()
              << "\nusage: modelwarden serve [--host H] [--port P] [--data-dir DIR] [--config FILE]\n";
    return 2;
  }
  auto loaded_config = config::LoadConfig(*flags, config::Environment::FromProcess());
  if (!loaded_config.ok()) return Fail("configuration", loaded_config.status());
  const config::Config config = std::move(loaded_config).value();

  sigset_t stop_signals = BlockStopSignals();

  std::error_code ec;
  std::filesystem::create_directories(config.data_dir, ec);
  if (ec) return Fail("data directory " + config.data_dir.string(), Status(StatusCode::kPermissionDenied, ec.message()));
  std::filesystem::create_directories(config.locations.front().path, ec);  // primary; others are the user's

  auto registry = Registry::Open(config.RegistryPath().string());
  if (!registry.ok()) return Fail("registry " + config.RegistryPath().string(), registry.status());
  StateMachine state_machine(**registry);
  const int64_t cleanup_start_ms = MonotonicMillis();
  auto cleanup = state_machine.StartupCleanup(std::cout);
  std::cout.flush();
  if (!cleanup.ok()) return Fail("startup cleanup", cleanup.status());
  MW_LOG(kInfo, "serve") << "startup cleanup: " << cleanup->marked.size() << " models in "
                         << MonotonicMillis() - cleanup_start_ms << " ms";

  auto classifier = CrashClassifier::Load(config.crash_patterns_file.string());
  if (!classifier.ok()) return Fail("crash patterns", classifier.status());

  // Read on a supervisor thread; set once the service exists (before any load can start).
  std::atomic<ModelService*> service_ptr{nullptr};
  SupervisorOptions supervisor_options;
  supervisor_options.worker_path = config.worker_path.string();
  supervisor_options.default_load_timeout_s = config.load_timeout_s;
  supervisor_options.on_unexpected_exit = [&service_ptr](const UnexpectedExit& exit) {
    if (ModelService* s = service_ptr.load()) s->OnWorkerDied(exit);
  };
  Supervisor supervisor(supervisor_options);
  ModelService service(**registry, state_machine, supervisor, *classifier, config, MW_VERSION);
  service_ptr.store(&service);

  api::HttpServerOptions http_options;
  http_options.host = config.host;
  http_options.port = config.port;
  http_options.api_key = config.api_key;
  // /v1 requests waiting for a model's slot hold a connection thread each:
  // room for one model's full queue on top of the usual pool.
  http_options.threads = 64 + static_cast<size_t>(std::min(config.max_queue, 960));
  api::HttpServer http(service, http_options);
  auto port = http.Bind();
  if (!port.ok()) return Fail("listen", port.status());
  std::cout << "modelwarden " << MW_VERSION << " listening on http://" << config.host << ":" << *port
            << " (data: " << config.data_dir.string() << ")" << std::endl;

  // Shutdown order matters: loads are cancelled and workers stopped before
  // the HTTP server stops, so no request thread stays blocked in a load.
  std::once_flag stopped;
  auto stop_all = [&] {
    std::call_once(stopped, [&] {
      service.BeginShutdown();
      supervisor.Shutdown();
      service.Shutdown();
      http.Stop();
    });
  };
  std::thread signal_thread([&] {
    int sig = 0;
    sigwait(&stop_signals, &sig);
    MW_LOG(kInfo, "serve") << "signal " << sig << ": shutting down";
    stop_all();
  });
  std::thread probe_thread([&] { ProbeDevices(supervisor, service); });
  // The cleanup commit skipped the WAL checkpoint so that listening was not
  // delayed by it; do it now, before the first load's commit would.
  std::thread checkpoint_thread([&] {
    auto copied = (*registry)->Checkpoint();
    if (!copied.ok()) MW_LOG(kWarn, "serve") << "WAL checkpoint after startup: " << copied.status().ToString();
  });

  Status run = http.Run();
  if (!run.ok()) pthread_kill(signal_thread.native_handle(), SIGTERM);  // wake the signal thread
  signal_thread.join();
  stop_all();
  probe_thread.join();
  checkpoint_thread.join();
  service_ptr.store(nullptr);
  std::cout << "modelwarden stopped" << std::endl;
  if (!run.ok()) return Fail("server", run);
  return 0;
}

}  // namespace mw::app
