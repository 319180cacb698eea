#include "fault_fixture.h"

#include <dirent.h>
#include <signal.h>
#include <sys/wait.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace mw::testing_harness {
namespace fs = std::filesystem;

FaultFixture::FaultFixture() : scratch_("mw-faults") {
  data_dir_ = scratch_.path() + "/data";
  fs::create_directories(data_dir_ + "/models");
}

bool FaultFixture::StartServer(std::vector<std::pair<std::string, std::string>> env,
                               const std::string& config_toml) {
  if (server_) server_->Stop();
  ServerOptions options;
  options.data_dir = data_dir_;
  options.marker = scratch_.path();
  options.log_path = scratch_.path() + "/server-" + std::to_string(++starts_) + ".log";
  options.env = std::move(env);
  // Every fault is an mw-fake-engine script registered with an argv through
  // the API, which the server runs only when told to (SPEC §9.1).
  std::string config_path = scratch_.path() + "/config.toml";
  std::ofstream(config_path) << "allow_api_commands = true\n" << config_toml;
  options.extra_args = {"--config", config_path};
  std::string error;
  server_ = ServerProcess::Spawn(options, &error);
  if (!server_) {
    ADD_FAILURE() << error;
    return false;
  }
  if (!server_->WaitListening()) {
    ADD_FAILURE() << "the server did not start:\n" << server_->Log();
    return false;
  }
  return true;
}

void FaultFixture::TearDown() {
  if (!server_) return;
  const int status = server_->Stop();
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
      << "the server did not stop cleanly (status " << status << "):\n"
      << server_->Log();
  const std::string survivors = WaitNoProcessesMarked(scratch_.path());
  EXPECT_EQ(survivors, "") << "processes left after the server stopped";
  for (pid_t pid : ProcessesMarked(scratch_.path())) ::kill(pid, SIGKILL);
  RegistrySnapshot snap = ReadRegistryCopy(data_dir_, scratch_.path());
  EXPECT_TRUE(snap.ok()) << snap.error << " integrity=" << snap.integrity;
  EXPECT_EQ(snap.CountStatus("testing"), 0);
  EXPECT_EQ(snap.CountOpenAttempts(), 0);
  if (HasFailure()) std::cout << "---- server log ----\n" << server_->Log() << std::endl;
}

bool FaultFixture::AddTestModelFile(const std::string& file_name) {
  std::string error;
  std::string model = TestModelPath(&error);
  if (model.empty()) {
    ADD_FAILURE() << error;
    return false;
  }
  std::error_code ec;
  fs::copy_file(model, data_dir_ + "/models/" + file_name, fs::copy_options::overwrite_existing, ec);
  EXPECT_FALSE(ec) << ec.message();
  return !ec;
}

Json FaultFixture::GetModelJson(const std::string& name) {
  HttpResult r = Http(url(), "GET", "/api/models/" + name);
  EXPECT_EQ(r.status, 200) << r.raw;
  return r.body;
}

HttpResult FaultFixture::ExpectFailedLoad(const std::string& name, const char* outcome, const char* category,
                                          const std::optional<std::string>& signal,
                                          std::optional<int> exit_code, const char* log_line) {
  SCOPED_TRACE("load of " + name);
  HttpResult r = Http(url(), "POST", "/api/orchestrate/load", {{"model_name", name}});
  EXPECT_EQ(r.status, 422) << r.raw;
  const Json& error = r.body["error"];
  EXPECT_EQ(error.value("code", ""), "load_failed") << r.raw;
  const Json& cls = error["classification"];
  EXPECT_EQ(cls.value("outcome", ""), outcome) << r.raw;
  if (category != nullptr) {
    EXPECT_EQ(cls.value("category", ""), category) << r.raw;
  }
  if (signal && signal->empty()) {
    EXPECT_TRUE(cls["signal"].is_null()) << r.raw;
  } else if (signal) {
    EXPECT_EQ(cls.value("signal", ""), *signal) << r.raw;
  }
  if (exit_code) {
    EXPECT_EQ(cls.value("exit_code", -1), *exit_code) << r.raw;
  }
  if (log_line != nullptr) {
    EXPECT_NE(cls.value("log_excerpt", "").find(log_line), std::string::npos) << r.raw;
  }

  // The same facts, durable, in the model's history.
  Json model = GetModelJson(name);
  EXPECT_EQ(model.value("compatibility_status", ""), "incompatible") << model.dump();
  EXPECT_EQ(model.value("compatibility_notes", "").rfind("Hardware incompatibility detected: ", 0), 0u)
      << model.dump();
  EXPECT_FALSE(model.value("loaded", true));
  EXPECT_EQ(model.value("total_failures", 0), 1);
  if (model["attempts"].empty()) {
    ADD_FAILURE() << "no attempt recorded: " << model.dump();
    return r;
  }
  const Json& attempt = model["attempts"][0];
  EXPECT_FALSE(attempt["finished_at"].is_null());
  EXPECT_EQ(attempt.value("outcome", ""), outcome);
  EXPECT_EQ(attempt.value("status_after", ""), "incompatible");
  if (category != nullptr) {
    EXPECT_EQ(attempt.value("category", ""), category);
  }
  if (signal && !signal->empty()) {
    EXPECT_EQ(attempt.value("signal", ""), *signal);
  }
  if (exit_code) {
    EXPECT_EQ(attempt.value("exit_code", -1), *exit_code);
  }
  if (log_line != nullptr) {
    EXPECT_NE(attempt.value("log_excerpt", "").find(log_line), std::string::npos);
  }
  return r;
}

void FaultFixture::ExpectServing() {
  SCOPED_TRACE("the server keeps serving");
  EXPECT_TRUE(server_->Running()) << server_->Log();
  EXPECT_EQ(Http(url(), "GET", "/api/models").status, 200);
  EXPECT_EQ(Http(url(), "GET", "/api/status").status, 200);
  const std::string name = "healthy-" + std::to_string(++healthy_models_);
  HttpResult reg = RegisterModel(
      url(), {{"model_name", name},
              {"engine", "command"},
              {"load_config", FakeEngineConfig({"--ready-line", "fake-engine ready", "--then", "ready"})}});
  EXPECT_EQ(reg.status, 201) << reg.raw;
  HttpResult load = Http(url(), "POST", "/api/orchestrate/load", {{"model_name", name}});
  EXPECT_EQ(load.status, 200) << load.raw;
  HttpResult unload = Http(url(), "POST", "/api/orchestrate/unload", {{"model_name", name}});
  EXPECT_EQ(unload.status, 200) << unload.raw;
}

namespace {

// argv of `pid` ("" if gone).
std::vector<std::string> Argv(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/cmdline", std::ios::binary);
  std::vector<std::string> args;
  std::string arg;
  while (std::getline(in, arg, '\0')) args.push_back(arg);
  return args;
}

// Whether `pid` has `path` mapped (a loader maps the model it loads).
bool Maps(pid_t pid, const std::string& path) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/maps");
  std::error_code ec;
  const std::string canonical = std::filesystem::weakly_canonical(path, ec).string();
  std::string line;
  while (std::getline(in, line)) {
    if (line.find(path) != std::string::npos || (!canonical.empty() && line.find(canonical) != std::string::npos)) {
      return true;
    }
  }
  return false;
}

}  // namespace

pid_t FaultFixture::FindWorker(const std::string& model_path) {
  DIR* dir = ::opendir("/proc");
  if (dir == nullptr) return 0;
  pid_t found = 0;
  while (dirent* entry = ::readdir(dir)) {
    char* end = nullptr;
    long pid = std::strtol(entry->d_name, &end, 10);
    if (end == entry->d_name || *end != '\0') continue;
    std::vector<std::string> args = Argv(static_cast<pid_t>(pid));
    // The worker itself (after exec), not its keeper: argv[0] is the worker.
    // A pre-started one (`load --standby`, SPEC §16) has no model in its
    // argv: it is this model's once it has mapped the file.
    static constexpr std::string_view kWorker = "modelwarden-worker";
    if (args.size() >= 4 && args[0].size() >= kWorker.size() &&
        args[0].compare(args[0].size() - kWorker.size(), kWorker.size(), kWorker) == 0 && args[1] == "load" &&
        (args[3] == model_path || (args[2] == "--standby" && Maps(static_cast<pid_t>(pid), model_path)))) {
      found = static_cast<pid_t>(pid);
      break;
    }
  }
  ::closedir(dir);
  return found;
}

pid_t FaultFixture::PreStartedWorkerPid() {
  static constexpr std::string_view kLine = "pre-started a worker pid=";
  std::string log;
  if (!PollUntil([&] { return (log = server_->Log()).find(kLine) != std::string::npos; }, milliseconds(30000))) {
    return 0;
  }
  return static_cast<pid_t>(std::atol(log.c_str() + log.rfind(kLine) + kLine.size()));
}

pid_t FaultFixture::StopWorkerAsSoonAsItStarts(const std::string& model_path, milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (pid_t pid = FindWorker(model_path); pid > 0) {
      ::kill(pid, SIGSTOP);
      return pid;
    }
  }
  return 0;
}

}  // namespace mw::testing_harness
