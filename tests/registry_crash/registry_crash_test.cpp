// A real child process is SIGKILLed right after BeginAttempt's commit point
// ("testing mark") or at an arbitrary point of a begin/finish loop; the test
// reopens the file as the next server start would, runs the startup cleanup,
// and checks the outcome and PRAGMA integrity_check.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <sstream>
#include <string>
#include <vector>

#include "compat/state_machine.h"
#include "support/registry_test_util.h"

namespace mw {
namespace {

// The helper process, its stdout as a line reader, and SIGKILL.
class Helper {
 public:
  Helper(const std::string& mode, const std::string& db, const std::string& model) {
    int out[2];
    if (pipe(out) != 0) return;
    pid_ = fork();
    if (pid_ == 0) {
      dup2(out[1], STDOUT_FILENO);
      close(out[0]);
      close(out[1]);
      execl(MW_CRASH_HELPER, MW_CRASH_HELPER, mode.c_str(), db.c_str(), model.c_str(), nullptr);
      _exit(127);
    }
    close(out[1]);
    stdout_ = fdopen(out[0], "r");
  }
  ~Helper() {
    Kill();
    if (stdout_ != nullptr) fclose(stdout_);
  }
  // The next line of the helper's stdout, without the newline ("" at EOF).
  std::string ReadLine() {
    char buf[256];
    if (stdout_ == nullptr || fgets(buf, sizeof(buf), stdout_) == nullptr) return "";
    std::string line = buf;
    if (!line.empty() && line.back() == '\n') line.pop_back();
    return line;
  }
  // SIGKILL and reap; returns the signal that ended it (0 if none).
  int Kill() {
    if (pid_ <= 0) return 0;
    kill(pid_, SIGKILL);
    int wstatus = 0;
    waitpid(pid_, &wstatus, 0);
    pid_ = -1;
    return WIFSIGNALED(wstatus) ? WTERMSIG(wstatus) : 0;
  }

 private:
  pid_t pid_ = -1;
  FILE* stdout_ = nullptr;
};

class RegistryCrashTest : public ::testing::Test {
 protected:
  std::string Db() const { return dir_.File("registry.db"); }
  // Registers `name` and gives it `successes` successful loads, then closes.
  void Prepare(const std::string& name, int successes) {
    auto reg = Registry::Open(Db());
    ASSERT_TRUE(reg.ok()) << reg.status().ToString();
    ModelRecord m;
    m.model_name = name;
    m.load_config = R"({"n_gpu_layers": 99})";
    ASSERT_TRUE((*reg)->AddModel(m).ok());
    StateMachine sm(**reg);
    for (int i = 0; i < successes; ++i) {
      auto id = sm.BeginAttempt(name, false, "");
      ASSERT_TRUE(id.ok());
      ASSERT_TRUE(sm.FinishSuccess(*id).ok());
    }
  }

  testing_util::TempDir dir_;
};

// Kills the helper right after BeginAttempt returned and checks what the
// next start finds and does. `expected` is the status cleanup must set.
void KillAfterBeginAndRestart(const std::string& db, const std::string& name, CompatStatus expected,
                              int64_t total_loads) {
  AttemptId id = 0;
  {
    Helper helper("begin", db, name);
    const std::string line = helper.ReadLine();
    ASSERT_EQ(line.rfind("ready ", 0), 0u) << "helper said: '" << line << "'";
    id = std::stoll(line.substr(6));
    ASSERT_EQ(helper.Kill(), SIGKILL);
  }
  auto reg = Registry::Open(db);
  ASSERT_TRUE(reg.ok()) << reg.status().ToString();
  ASSERT_TRUE((*reg)->CheckIntegrity().ok());
  // The commit point held: the model is testing and its attempt is open.
  auto model = (*reg)->GetModel(name);
  ASSERT_TRUE(model.ok());
  EXPECT_EQ(model->compatibility_status, CompatStatus::kTesting);
  auto attempt = (*reg)->GetAttempt(id);
  ASSERT_TRUE(attempt.ok());
  EXPECT_TRUE(attempt->open());
  EXPECT_EQ(attempt->load_config, R"({"n_gpu_layers": 99})");
  EXPECT_EQ(attempt->hardware_fingerprint, "crash-helper");

  StateMachine sm(**reg);
  std::ostringstream out;
  auto report = sm.StartupCleanup(out);
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  EXPECT_EQ(out.str(),
            "\u26a0\ufe0f  Found 1 model(s) stuck in 'testing' status from previous crash\n"
            "   - Marked '" +
                name + "' as " + std::string(ToString(expected)) +
                " (crashed during test)\n"
                "\u2705 Compatibility status cleanup completed\n");
  model = (*reg)->GetModel(name);
  EXPECT_EQ(model->compatibility_status, expected);
  EXPECT_EQ(model->total_loads, total_loads);
  EXPECT_EQ(model->total_failures, 1);
  attempt = (*reg)->GetAttempt(id);
  EXPECT_EQ(attempt->outcome, AttemptOutcome::kServerCrash);
  EXPECT_EQ(attempt->status_after, expected);
  EXPECT_TRUE((*reg)->CheckIntegrity().ok());
}

TEST_F(RegistryCrashTest, KilledRightAfterBeginAttemptIsMarkedIncompatible) {
  Prepare("phi-mini", 0);
  KillAfterBeginAndRestart(Db(), "phi-mini", CompatStatus::kIncompatible, 0);
}

TEST_F(RegistryCrashTest, KilledAfterThreeSuccessfulLoadsIsMarkedDegraded) {
  Prepare("veteran", 3);
  KillAfterBeginAndRestart(Db(), "veteran", CompatStatus::kDegraded, 3);
}

// Kills a process that commits as fast as it can, at whatever point it is
// in, several times over: every restart finds an intact file in a consistent
// state (testing exactly when an attempt is open), and cleanup settles it.
TEST_F(RegistryCrashTest, KilledAtAnyPointLeavesAConsistentFile) {
  Prepare("busy", 0);
  for (int round = 0; round < 5; ++round) {
    {
      Helper helper("loop", Db(), "busy");
      // Wait for a few commits so the kill lands mid-stream, not at start-up.
      for (int i = 0; i < 3 + round; ++i) ASSERT_EQ(helper.ReadLine().rfind("cycle ", 0), 0u);
      ASSERT_EQ(helper.Kill(), SIGKILL);
    }
    auto reg = Registry::Open(Db());
    ASSERT_TRUE(reg.ok()) << reg.status().ToString();
    ASSERT_TRUE((*reg)->CheckIntegrity().ok());
    auto model = (*reg)->GetModel("busy");
    ASSERT_TRUE(model.ok());
    auto attempts = (*reg)->ListAttempts("busy", 0);
    ASSERT_TRUE(attempts.ok());
    int open = 0;
    for (const auto& a : *attempts) open += a.open() ? 1 : 0;
    EXPECT_EQ(open, model->compatibility_status == CompatStatus::kTesting ? 1 : 0);
    StateMachine sm(**reg);
    std::ostringstream out;
    ASSERT_TRUE(sm.StartupCleanup(out).ok());
    EXPECT_NE((*reg)->GetModel("busy")->compatibility_status, CompatStatus::kTesting);
    EXPECT_TRUE((*reg)->CheckIntegrity().ok());
  }
}

}  // namespace
}  // namespace mw
