// ChildProcess with real processes (mw-fake-engine under mw-keeper).
#include "supervisor/child_process.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <fstream>
#include <mutex>
#include <thread>
#include <vector>

#include "supervisor/test_support.h"

namespace mw {
namespace {

using std::chrono::milliseconds;
using testing_support::FakeEngine;
using testing_support::ProcessGone;
using testing_support::TempDir;
using testing_support::WaitForFile;

SpawnOptions Engine(std::vector<std::string> args) {
  SpawnOptions o;
  o.argv = {FakeEngine()};
  o.argv.insert(o.argv.end(), args.begin(), args.end());
  return o;
}

TEST(ChildProcessTest, ReportsExitCodeAndCapturesBothStreams) {
  std::mutex mu;
  std::vector<std::string> lines;
  SpawnOptions o = Engine({"--print", "hello", "--stderr", "oops: failure", "--then", "exit1"});
  o.on_output_line = [&](std::string_view l) {
    std::lock_guard<std::mutex> lock(mu);
    lines.emplace_back(l);
  };
  auto child = ChildProcess::Spawn(std::move(o));
  ASSERT_TRUE(child.ok()) << child.status().ToString();
  EXPECT_GT(child->pid(), 0);
  ProcessExit e = child->Wait();
  EXPECT_EQ(e.exit_code, 1);
  EXPECT_FALSE(e.signaled());
  EXPECT_FALSE(e.status_unknown);
  EXPECT_EQ(e.Describe(), "exit code 1");
  EXPECT_EQ(child->LogTail(), "hello\noops: failure\n");
  std::lock_guard<std::mutex> lock(mu);
  EXPECT_EQ(lines, (std::vector<std::string>{"hello", "oops: failure"}));
}

TEST(ChildProcessTest, ReportsTheExactSignal) {
  for (auto [action, sig] : {std::pair{"segv", SIGSEGV}, std::pair{"abort", SIGABRT}, std::pair{"sigkill-self", SIGKILL}}) {
    auto child = ChildProcess::Spawn(Engine({"--print", "about to die", "--then", action}));
    ASSERT_TRUE(child.ok()) << child.status().ToString();
    ProcessExit e = child->Wait();
    EXPECT_EQ(e.signal, sig) << action;
    EXPECT_NE(e.Describe().find(SignalName(sig)), std::string::npos) << e.Describe();
    EXPECT_EQ(child->LogTail(), "about to die\n");
  }
  EXPECT_EQ(SignalName(SIGSEGV), "SIGSEGV");
}

TEST(ChildProcessTest, ExitCallbackFiresOnceWithTheStatus) {
  std::atomic<int> calls{0};
  std::atomic<int> code{-5};
  SpawnOptions o = Engine({"--then", "exit:7"});
  o.on_exit = [&](const ProcessExit& e) {
    code = e.exit_code;
    ++calls;
  };
  auto child = ChildProcess::Spawn(std::move(o));
  ASSERT_TRUE(child.ok());
  child->Wait();
  child = ChildProcess::Spawn(Engine({"--then", "exit0"}));  // move-assign releases the first
  EXPECT_EQ(calls.load(), 1);
  EXPECT_EQ(code.load(), 7);
}

TEST(ChildProcessTest, MissingProgramIsACleanError) {
  SpawnOptions o;
  o.argv = {"/nonexistent/engine", "--x"};
  auto child = ChildProcess::Spawn(std::move(o));
  ASSERT_FALSE(child.ok());
  EXPECT_EQ(child.status().code(), StatusCode::kNotFound);
  EXPECT_NE(child.status().message().find("/nonexistent/engine"), std::string::npos);

  SpawnOptions by_name;
  by_name.argv = {"mw-no-such-program-anywhere"};
  EXPECT_EQ(ChildProcess::Spawn(std::move(by_name)).status().code(), StatusCode::kNotFound);

  SpawnOptions empty;
  EXPECT_EQ(ChildProcess::Spawn(std::move(empty)).status().code(), StatusCode::kInvalidArgument);
}

TEST(ChildProcessTest, SearchesPathWithoutAShell) {
  SpawnOptions o;
  o.argv = {"true"};
  auto child = ChildProcess::Spawn(std::move(o));
  ASSERT_TRUE(child.ok()) << child.status().ToString();
  EXPECT_TRUE(child->Wait().success());
}

TEST(ChildProcessTest, ProtocolPipeAndEnvironment) {
  std::mutex mu;
  std::vector<std::string> protocol;
  SpawnOptions o = Engine({"--env", "MW_PROTOCOL_FD", "--env", "MY_VAR", "--protocol", R"({"type":"progress","progress":0.5})",
                           "--then", "exit0"});
  o.protocol_pipe = true;
  o.env = {{"MY_VAR", "a value with spaces"}};
  o.on_protocol_line = [&](std::string_view l) {
    std::lock_guard<std::mutex> lock(mu);
    protocol.emplace_back(l);
  };
  auto child = ChildProcess::Spawn(std::move(o));
  ASSERT_TRUE(child.ok());
  EXPECT_TRUE(child->Wait().success());
  EXPECT_EQ(child->LogTail(), "MW_PROTOCOL_FD=3\nMY_VAR=a value with spaces\n");
  std::lock_guard<std::mutex> lock(mu);
  EXPECT_EQ(protocol, (std::vector<std::string>{R"({"type":"progress","progress":0.5})"}));
}

TEST(ChildProcessTest, WithoutProtocolPipeFd3IsClosed) {
  auto child = ChildProcess::Spawn(Engine({"--protocol", "x", "--then", "exit0"}));
  ASSERT_TRUE(child.ok());
  EXPECT_TRUE(child->Wait().success());  // the write failed quietly
}

TEST(ChildProcessTest, PoliteStopThroughStdin) {
  auto child = ChildProcess::Spawn(Engine({"--then", "ready"}));
  ASSERT_TRUE(child.ok());
  StopOptions stop;
  stop.stop_line = "stop";
  stop.polite_grace = milliseconds(20000);
  ProcessExit e = child->Stop(stop);
  EXPECT_TRUE(e.success()) << e.Describe();
  EXPECT_NE(child->LogTail().find("stopping"), std::string::npos);
}

TEST(ChildProcessTest, StopEscalatesToSigterm) {
  auto child = ChildProcess::Spawn(Engine({"--then", "hang"}));
  ASSERT_TRUE(child.ok());
  StopOptions stop;
  stop.polite_grace = milliseconds(50);
  ProcessExit e = child->Stop(stop);
  EXPECT_EQ(e.signal, SIGTERM) << e.Describe();
}

TEST(ChildProcessTest, StopEscalatesToSigkillWhenSigtermIsIgnored) {
  std::string dir = TempDir();
  std::string pid_file = dir + "/pids";
  auto child = ChildProcess::Spawn(Engine({"--ignore-sigterm", "--pid-file", pid_file, "--then", "fork-child-and-hang"}));
  ASSERT_TRUE(child.ok());
  auto pids = WaitForFile(pid_file);
  ASSERT_EQ(pids.size(), 2u);
  StopOptions stop;
  stop.polite_grace = milliseconds(50);
  stop.term_grace = milliseconds(200);
  ProcessExit e = child->Stop(stop);
  EXPECT_EQ(e.signal, SIGKILL) << e.Describe();
  // The keeper waits for every descendant before it reports the end.
  EXPECT_TRUE(ProcessGone(pids[0]));
  EXPECT_TRUE(ProcessGone(pids[1]));
}

// A SIGSTOPped program (a hung engine, an eviction of one) reads no stop
// line and acts on no SIGTERM until it is continued: Stop kills it at once
// instead of waiting out the graces (here long enough that the watchdog's
// SIGCONT ends the wait first without the fix: the program then reads its
// stop line and exits 0).
TEST(ChildProcessTest, StopKillsAStoppedProgramWithoutWaitingOutTheGraces) {
  auto child = ChildProcess::Spawn(Engine({"--ignore-sigterm", "--then", "ready"}));
  ASSERT_TRUE(child.ok());
  const int pid = child->pid();
  EXPECT_FALSE(child->stopped());
  ASSERT_EQ(::kill(pid, SIGSTOP), 0);
  const auto seen_by = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (!child->stopped() && std::chrono::steady_clock::now() < seen_by) std::this_thread::sleep_for(milliseconds(5));
  ASSERT_TRUE(child->stopped());

  std::mutex mu;
  std::condition_variable cv;
  bool returned = false;
  std::thread watchdog([&] {
    std::unique_lock lock(mu);
    if (!cv.wait_for(lock, std::chrono::seconds(60), [&] { return returned; })) ::kill(pid, SIGCONT);
  });
  StopOptions stop;
  stop.stop_line = "stop";
  stop.polite_grace = milliseconds(600000);
  stop.term_grace = milliseconds(600000);
  ProcessExit e = child->Stop(stop);
  {
    std::lock_guard lock(mu);
    returned = true;
  }
  cv.notify_all();
  watchdog.join();
  EXPECT_EQ(e.signal, SIGKILL) << e.Describe();
  EXPECT_TRUE(ProcessGone(pid));
}

TEST(ChildProcessTest, DestructorKillsTheProgramAndItsDetachedChildren) {
  std::string dir = TempDir();
  std::string pid_file = dir + "/pids";
  std::vector<int> pids;
  {
    auto child = ChildProcess::Spawn(Engine({"--pid-file", pid_file, "--then", "fork-child-and-hang"}));
    ASSERT_TRUE(child.ok());
    pids = WaitForFile(pid_file);
    ASSERT_EQ(pids.size(), 2u);
    EXPECT_EQ(pids[0], child->pid());
  }
  EXPECT_TRUE(ProcessGone(pids[0]));
  EXPECT_TRUE(ProcessGone(pids[1]));
}

TEST(ChildProcessTest, LeftoverChildrenDieWhenTheProgramExits) {
  std::string dir = TempDir();
  std::string pid_file = dir + "/pids";
  // The engine forks a detached child, then is killed by a signal of its own.
  auto child = ChildProcess::Spawn(Engine({"--pid-file", pid_file, "--then", "fork-child-and-hang"}));
  ASSERT_TRUE(child.ok());
  auto pids = WaitForFile(pid_file);
  ASSERT_EQ(pids.size(), 2u);
  ::kill(pids[0], SIGSEGV);
  ProcessExit e = child->Wait();
  EXPECT_EQ(e.signal, SIGSEGV);
  EXPECT_TRUE(ProcessGone(pids[1]));
}

TEST(ChildProcessTest, LogKeepsTheLast64KiBOfAFlood) {
  auto child = ChildProcess::Spawn(Engine({"--flood", "1000000", "--print", "final line", "--then", "exit1"}));
  ASSERT_TRUE(child.ok());
  EXPECT_EQ(child->Wait().exit_code, 1);
  std::string tail = child->LogTail();
  EXPECT_EQ(tail.size(), kDefaultLogCapacity);
  EXPECT_EQ(tail.substr(tail.size() - 11), "final line\n");
  EXPECT_GE(child->log_total_bytes(), 1000000u);
}

TEST(ChildProcessTest, WriteToClosedStdinIsAnErrorNotASignal) {
  auto child = ChildProcess::Spawn(Engine({"--then", "exit0"}));
  ASSERT_TRUE(child.ok());
  child->Wait();
  EXPECT_FALSE(child->WriteStdin("stop\n").ok());
}

TEST(ChildProcessTest, MovedObjectKeepsOwnership) {
  auto child = ChildProcess::Spawn(Engine({"--then", "ready"}));
  ASSERT_TRUE(child.ok());
  ChildProcess owner = std::move(child).value();
  ChildProcess second = std::move(owner);
  EXPECT_TRUE(second.running());
  EXPECT_TRUE(second.WriteStdin("stop\n").ok());
  EXPECT_TRUE(second.Wait().success());
}

}  // namespace
}  // namespace mw
