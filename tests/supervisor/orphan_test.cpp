// No orphans: when the server is killed with SIGKILL, no process it started
// survives, nor any child of one (SPEC §6). The "server" is
// supervisor_orphan_helper, a real process using the real Supervisor.
#include <gtest/gtest.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <string>
#include <vector>

#include "supervisor/test_support.h"

extern char** environ;

namespace mw {
namespace {

using testing_support::ProcessGone;

std::string HelperPath() {
  char buf[4096];
  ssize_t n = ::readlink("/proc/self/exe", buf, sizeof(buf) - 1);
  std::string exe(buf, n > 0 ? static_cast<size_t>(n) : 0);
  return exe.substr(0, exe.rfind('/')) + "/supervisor_orphan_helper";
}

int ParentOf(int pid) {
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string content;
  std::getline(stat, content);
  size_t paren = content.rfind(')');
  if (paren == std::string::npos) return 0;
  char state = 0;
  int ppid = 0;
  if (std::sscanf(content.c_str() + paren + 1, " %c %d", &state, &ppid) != 2) return 0;
  return ppid;
}

void KillServerAndExpectNoSurvivors(const std::string& mode) {
  std::string pid_file = testing_support::TempDir() + "/pids";
  std::string helper = HelperPath();
  std::vector<char*> argv = {helper.data(), pid_file.data(), const_cast<char*>(mode.c_str()), nullptr};
  pid_t server = 0;
  ASSERT_EQ(::posix_spawn(&server, helper.c_str(), nullptr, nullptr, argv.data(), environ), 0);
  std::vector<int> pids = testing_support::WaitForFile(pid_file);
  ASSERT_EQ(pids.size(), 2u) << "the engine did not start";
  const int engine = pids[0];
  const int grandchild = pids[1];
  const int keeper = ParentOf(engine);
  ASSERT_GT(keeper, 1);
  ASSERT_EQ(ParentOf(keeper), server);
  if (mode == "loaded") {
    EXPECT_EQ(testing_support::WaitForFile(pid_file + ".outcome"), std::vector<int>{0}) << "the load did not succeed";
  }
  ASSERT_FALSE(ProcessGone(engine, std::chrono::milliseconds(0)));
  ASSERT_FALSE(ProcessGone(grandchild, std::chrono::milliseconds(0)));

  ASSERT_EQ(::kill(server, SIGKILL), 0);
  int status = 0;
  ASSERT_EQ(::waitpid(server, &status, 0), server);
  ASSERT_TRUE(WIFSIGNALED(status));

  EXPECT_TRUE(ProcessGone(engine)) << "engine " << engine << " survived the server";
  EXPECT_TRUE(ProcessGone(grandchild)) << "the engine's detached child " << grandchild << " survived";
  EXPECT_TRUE(ProcessGone(keeper)) << "keeper " << keeper << " survived";
}

TEST(NoOrphansTest, ServerKilledWhileACommandIsLoading) { KillServerAndExpectNoSurvivors("loading"); }

TEST(NoOrphansTest, ServerKilledWhileACommandIsLoaded) { KillServerAndExpectNoSurvivors("loaded"); }

}  // namespace
}  // namespace mw
