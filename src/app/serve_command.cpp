#include "app/serve_command.h"

#include <sys/stat.h>

#include <pthread.h>
#include <signal.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <mutex>
#include <sstream>
#include <string_view>
#include <thread>

#include "api/http_server.h"
#include "app/command_policy.h"
#include "app/metrics_source.h"
#include "app/config_reload.h"
#include "app/fleet_node.h"
#include "app/peer_router.h"
#include "app/model_service.h"
#include "app/pull_service.h"
#include "app/systemd_notify.h"
#include "classifier/crash_classifier.h"
#include "common/heap_trim.h"
#include "common/log.h"
#include "common/pid_lock.h"
#include "common/time_util.h"
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

// An existing data directory keeps the permissions its owner chose; say so
// when other users can read the registry in it.
void WarnIfOthersCanRead(const std::filesystem::path& dir) {
  struct stat st {};
  if (stat(dir.c_str(), &st) != 0) return;
  if ((st.st_mode & (S_IRWXG | S_IRWXO)) != 0) {
    MW_LOG(kWarn, "serve") << "data directory " << dir.string() << " is open to other users (mode "
                           << std::oct << (st.st_mode & 0777) << std::dec
                           << "): its registry holds notes and load_configs; chmod 700 it unless that is intended";
  }
}

// scan_on_start (SPEC §17): what it registered, on stdout before "listening".
void ScanOnStart(PullService& pulls) {
  auto added = pulls.Scan();
  if (!added.ok()) {
    MW_LOG(kWarn, "scan") << added.status().message();
    return;
  }
  std::cout << "scan: registered " << added->size() << " model(s)";
  for (const api::ScannedModel& m : *added) std::cout << (&m == &added->front() ? ": " : ", ") << m.model_name;
  std::cout << std::endl;
}

}  // namespace

int RunServe(const std::vector<std::string>& args) {
  // First, while no thread runs: it unsets the variables so children do not inherit them.
  SystemdNotifier systemd(NotifyTarget::TakeFromEnvironment());
  auto flags = config::ParseServeFlags(args);
  if (!flags.ok()) {
    std::cerr << "modelwarden serve: " << flags.status().message()
              << "\nusage: modelwarden serve [--host H] [--port P] [--data-dir DIR] [--config FILE]\n";
    return 2;
  }
  auto loaded_config = config::LoadConfig(*flags, config::Environment::FromProcess());
  if (!loaded_config.ok()) return Fail("configuration", loaded_config.status());
  const config::Config config = std::move(loaded_config).value();
  SetLogFormat(config.log_format);
  if (Status presets = ValidatePresets(config); !presets.ok()) return Fail("configuration", presets);
  if (Status probe = ValidateProbeCommand(config); !probe.ok()) return Fail("configuration", probe);
  if (config.allow_api_commands) {
    MW_LOG(kWarn, "serve") << "allow_api_commands = true: API clients may choose programs for command models; "
                              "anything that can reach this server (a local user, a web page allowed by "
                              "allowed_origins) can run programs as this user";
  }
  // The registry holds notes and load_configs, the logs hold model output:
  // what the server creates is for its own user only (SPEC §9.1).
  umask(077);

  sigset_t stop_signals = BlockStopSignals();

  std::error_code ec;
  std::filesystem::create_directories(config.data_dir, ec);
  if (ec) return Fail("data directory " + config.data_dir.string(), Status(StatusCode::kPermissionDenied, ec.message()));
  WarnIfOthersCanRead(config.data_dir);
  std::filesystem::create_directories(config.locations.front().path, ec);  // primary; others are the user's

  // One server per data directory (the startup cleanup relies on it); held until exit.
  auto data_dir_lock = PidLock::Acquire(config.data_dir / "modelwarden.lock");
  if (!data_dir_lock.ok()) return Fail("data directory " + config.data_dir.string(), data_dir_lock.status());
  auto registry = Registry::Open(config.RegistryLocation(),
                                 {.connect_timeout_s = config.registry_connect_timeout_s,
                                  .statement_timeout_ms = config.registry_statement_timeout_s * 1000,
                                  .keepalive_s = config.registry_keepalive_s});
  if (!registry.ok()) return Fail("registry", registry.status());
  StateMachine state_machine(**registry);
  // SPEC §14: this server is a node with a lease before it settles what its
  // previous run left open (only its own attempts).
  auto node_id = LoadOrCreateNodeId(config.data_dir);
  if (!node_id.ok()) return Fail("node id", node_id.status());
  std::atomic<Supervisor*> supervisor_ptr{nullptr};  // set once it exists; read by the heartbeat
  // The models loaded here now: what the heartbeat records, and routing's step 1.
  auto loaded_here = [&supervisor_ptr] {
    std::vector<std::string> names;
    if (Supervisor* s = supervisor_ptr.load()) {
      for (const LoadedModel& m : s->Loaded()) names.push_back(m.model_name);
    }
    return names;
  };
  FleetNode fleet(**registry, state_machine,
                  {.node_id = *node_id, .host = HostName(), .lease_s = config.lease_s},
                  std::cout, loaded_here);
  if (Status joined = fleet.Join(); !joined.ok()) return Fail("registry", joined);
  const int64_t cleanup_start_ms = MonotonicMillis();
  // SPEC §1.4's lines, verbatim, on stderr among the log lines around them
  // (issue 23): a log reader sees them in order, and stdout stays for
  // the "listening on" line. With log_format = "json" each becomes the
  // message of one log object, so the log stays one object per line.
  std::ostringstream cleanup_lines;
  auto cleanup = state_machine.StartupCleanup(cleanup_lines);
  if (GetLogFormat() == LogFormat::kJson) {
    std::istringstream lines(cleanup_lines.str());
    for (std::string line; std::getline(lines, line);) {
      if (!line.empty()) MW_LOG(kInfo, "cleanup") << line;
    }
  } else {
    std::cerr << cleanup_lines.str() << std::flush;
  }
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
  // The engines' sockets (SPEC §20): private to this user, beside the data.
  // Absolute: the worker takes only an absolute socket path.
  supervisor_options.runtime_dir = std::filesystem::absolute(config.data_dir / "run", ec).string();
  // SPEC §16: a llama.cpp worker started ahead (supervisor.h); the
  // environment variable MODELWARDEN_PRESTART_WORKER=0 turns it off.
  const char* prestart = std::getenv("MODELWARDEN_PRESTART_WORKER");
  supervisor_options.prestart_worker = prestart == nullptr || std::string_view(prestart) != "0";
  supervisor_options.on_unexpected_exit = [&service_ptr](const UnexpectedExit& exit) {
    if (ModelService* s = service_ptr.load()) s->OnWorkerDied(exit);
  };
  Supervisor supervisor(supervisor_options);
  if (Status st = supervisor.PrepareRuntime(); !st.ok()) return Fail("runtime directory", st);
  supervisor_ptr.store(&supervisor);
  ModelService service(**registry, state_machine, supervisor, *classifier, config, MW_VERSION);
  service_ptr.store(&service);
  service.RestoreEnvironment();
  // A node of a shared registry reads and writes its environment class's
  // verdicts: it knows its devices before it answers anyone (SPEC §14).
  if ((*registry)->Shared()) service.ProbeDevicesNow();
  // Issue 26: other nodes' changes reach this node's event stream and list
  // cache as they commit (PostgreSQL LISTEN/NOTIFY; nullptr on SQLite).
  std::unique_ptr<Registry::ChangeWatch> watch = (*registry)->WatchChanges(
      [&service](const std::vector<std::string>& names) { service.OnRegistryChange(names); });

  api::HttpServerOptions http_options;
  http_options.host = config.host;
  http_options.port = config.port;
  http_options.api_key = config.api_key;
  http_options.node_id = *node_id;
  http_options.guard.allowed_hosts = config.allowed_hosts;
  http_options.guard.allowed_origins = config.allowed_origins;
  http_options.metrics_text = [&service] { return RenderMetrics(service, metrics::Global()); };
  http_options.inference_answered = [](const std::string& model, int http_status) {
    metrics::Global().RecordRequest(model, http_status);
  };
  // /v1 requests waiting for a model's slot hold a connection thread each:
  // room for one model's full queue on top of the usual pool (at most; the
  // threads beyond the 8 resident ones end when idle, api/http_server.h).
  http_options.threads = 64 + static_cast<size_t>(std::min(config.max_queue, 960));
  // SPEC §21: any node answers (default on when the registry is shared).
  // The key a peer is asked with is the HTTP server's, which a SIGHUP replaces.
  std::atomic<api::HttpServer*> http_ptr{nullptr};
  PeerRouter peers(**registry, service, loaded_here,
                   {.enabled = config.route_to_peers.value_or((*registry)->Shared()), .api_key = [&] {
                      api::HttpServer* h = http_ptr.load();
                      return h != nullptr ? h->ApiKey() : config.api_key;
                    }});
  http_options.peers = &peers;
  PullService pulls(service, config);  // SPEC §17; destroyed after http, before service
  http_options.pulls = &pulls;
  if (config.scan_on_start) ScanOnStart(pulls);
  api::HttpServer http(service, http_options);
  http_ptr.store(&http);
  auto port = http.Bind();
  if (!port.ok()) return Fail("listen", port.status());
  // Where the fleet's other nodes reach this one: written by the first heartbeat.
  (*registry)->SetAdvertiseUrl(config.advertise_url.empty() ? DefaultAdvertiseUrl(config.host, *port)
                                                             : config.advertise_url);
  std::cout << "modelwarden " << MW_VERSION << " listening on http://" << config.host << ":" << *port
            << " (data: " << config.data_dir.string() << ")" << std::endl;
  if (Status st = systemd.Notify("READY=1\nSTATUS=listening on " + config.host + ":" + std::to_string(*port));
      !st.ok()) {
    MW_LOG(kWarn, "systemd") << st.message();
  }
  systemd.StartWatchdog([&service] { return service.GetStatus().ok(); });
  fleet.Start();  // stopped by stop_all, before the supervisor goes
  // RSS follows what is in use: the registry's cached pages given back, then
  // the C library's free heap memory (common/heap_trim.h).
  HeapTrimmer heap_trimmer(HeapTrimmer::kInterval, [&registry] {
    (*registry)->ReleaseCachedPages();
    (void)TrimHeapNow();
  });
  heap_trimmer.Start();

  // Shutdown order matters: loads are cancelled and workers stopped before
  // the HTTP server stops, so no request thread stays blocked in a load.
  std::once_flag stopped;
  std::atomic<bool> run_failed{false};
  auto stop_all = [&] {
    std::call_once(stopped, [&] {
      (void)systemd.Notify("STOPPING=1\nSTATUS=stopping");
      systemd.StopWatchdog();
      watch.reset();
      service.BeginShutdown();
      supervisor.Shutdown();
      service.Shutdown();
      http.Stop();
      fleet.Stop();  // leaves the fleet: nobody waits for this lease to run out
      heap_trimmer.Stop();
    });
  };
  ConfigReloader reloader(*flags, config, service, http);
  std::thread signal_thread([&] {
    for (;;) {
      int sig = 0;
      sigwait(&stop_signals, &sig);
      if (sig == SIGHUP && !run_failed.load()) {
        MW_LOG(kInfo, "serve") << "SIGHUP: reloading the configuration";
        (void)systemd.Notify("RELOADING=1");
        (void)reloader.Reload();  // logs what changed, or why nothing did
        (void)systemd.Notify("READY=1");
        continue;
      }
      MW_LOG(kInfo, "serve") << "signal " << sig << ": shutting down";
      stop_all();
      return;
    }
  });
  service.StartProbing();  // stopped by service.Shutdown()
  // The cleanup commit skipped the WAL checkpoint so that listening was not
  // delayed by it; do it now, before the first load's commit would.
  std::thread checkpoint_thread([&] {
    auto copied = (*registry)->Checkpoint();
    if (!copied.ok()) MW_LOG(kWarn, "serve") << "WAL checkpoint after startup: " << copied.status().ToString();
  });

  Status run = http.Run();
  if (!run.ok()) {
    run_failed = true;
    pthread_kill(signal_thread.native_handle(), SIGTERM);  // wake the signal thread
  }
  signal_thread.join();
  stop_all();
  checkpoint_thread.join();
  service_ptr.store(nullptr);
  std::cout << "modelwarden stopped" << std::endl;
  if (!run.ok()) return Fail("server", run);
  return 0;
}

}  // namespace mw::app
