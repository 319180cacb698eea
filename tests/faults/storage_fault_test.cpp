// Storage faults during an attempt (issue 7, item 2): the disk fills up, or
// the database becomes read-only, while a load runs. The server must say so
// (a JSON error, never a crash or a hang), keep serving reads, and lose
// nothing it had already recorded; a restart finds a consistent file.
//
// Mechanisms (the tests run as root, so chmod stops nothing):
//   disk full  the data directory is a small tmpfs (`mount -t tmpfs`), filled
//              by a file while the attempt runs; skipped where mount fails.
//   read-only  `chattr +i` on registry.db and its -wal while the attempt
//              runs: writes through descriptors already open fail with EPERM
//              (ext4 and friends); skipped where chattr is refused.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/mount.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <thread>

#include "fault_fixture.h"
#include "require.h"

namespace mw::testing_harness {
namespace {

namespace fs = std::filesystem;

// Writes `path` until the filesystem is full; returns the bytes written.
int64_t FillDisk(const std::string& path) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return 0;
  std::string chunk(1 << 20, 'x');
  int64_t total = 0;
  for (size_t size : {size_t{1} << 20, size_t{4096}, size_t{512}, size_t{1}}) {
    for (;;) {
      ssize_t n = ::write(fd, chunk.data(), size);
      if (n <= 0) break;
      total += n;
    }
  }
  ::fsync(fd);
  ::close(fd);
  return total;
}

// These faults need root (mount(), chattr +i); CI and `make test` run as root.
constexpr char kRoot[] = "root (mount() and chattr +i need it; CI runs make test as root)";

class StorageFaultTest : public FaultFixture {
 protected:
  void TearDown() override {
    for (const std::string& file : immutable_) {
      std::string out;
      RunProgram({"chattr", "-i", file}, &out);
    }
    FaultFixture::TearDown();
    if (mounted_) ::umount2(data_dir().c_str(), MNT_DETACH);
  }

  // A tmpfs of `size` on the data directory; false (with the reason) if
  // the kernel refuses mount() to this root (a container without
  // CAP_SYS_ADMIN): the machine cannot, a skip.
  bool MountSmallDisk(const std::string& size, std::string* why) {
    if (::mount("tmpfs", data_dir().c_str(), "tmpfs", 0, ("size=" + size).c_str()) != 0) {
      *why = std::strerror(errno);
      return false;
    }
    mounted_ = true;
    fs::create_directories(data_dir() + "/models");
    return true;
  }

  // Registers `good` (ready at once) and `victim` (slow, then 200 KB of
  // output and SIGABRT: its failure record is large), loads `good` once.
  void RegisterAndLoadGood() {
    ASSERT_EQ(RegisterModel(url(), {{"model_name", "good"},
                                    {"engine", "command"},
                                    {"load_config", FakeEngineConfig({"--ready-line", "fake-engine ready",
                                                                      "--then", "ready"})}})
                  .status,
              201);
    ASSERT_EQ(RegisterModel(url(), {{"model_name", "victim"},
                                    {"engine", "command"},
                                    {"load_config",
                                     FakeEngineConfig({"--print", "victim: loading", "--sleep-ms", "1500",
                                                       "--flood", "200000", "--then", "abort"})}})
                  .status,
              201);
    HttpResult load = Http(url(), "POST", "/api/orchestrate/load", {{"model_name", "good"}});
    ASSERT_EQ(load.status, 200) << load.raw;
    ASSERT_EQ(Http(url(), "POST", "/api/orchestrate/unload", {{"model_name", "good"}}).status, 200);
    good_before_ = GetModelJson("good");
    ASSERT_EQ(good_before_.value("total_loads", 0), 1);
  }

  // Loads `victim` and runs `fault` once it is testing; returns the answer.
  HttpResult LoadVictimWith(const std::function<void()>& fault) {
    // The first device probe writes the environment class to the registry;
    // it must be done before the files are made read-only, or that write
    // (not the attempt under test) meets the fault: SQLite's -shm is mapped,
    // and a write to a mapped page of an immutable file is a SIGBUS.
    EXPECT_TRUE(PollUntil([&] { return server().Log().find("devices=") != std::string::npos; },
                          milliseconds(30000)))
        << server().Log();
    HttpResult answer;
    std::thread load([&] {
      answer = Http(url(), "POST", "/api/orchestrate/load", {{"model_name", "victim"}});
    });
    bool testing =
        PollUntil([&] { return GetModelJson("victim").value("compatibility_status", "") == "testing"; },
                  milliseconds(10000));
    EXPECT_TRUE(testing);
    fault();
    load.join();
    return answer;
  }

  // The server answered with JSON (a result, or an error with a code and a
  // message) and is still up, serving reads.
  void ExpectAnsweredNotDead(const HttpResult& answer, const std::string& what) {
    std::cout << "[storage] " << what << ": HTTP " << answer.status << " " << answer.raw.substr(0, 400)
              << std::endl;
    EXPECT_TRUE(answer.json_ok) << what << ": " << answer.raw;
    if (answer.status >= 400) {
      EXPECT_FALSE(answer.body["error"].value("code", "").empty()) << answer.raw;
      EXPECT_FALSE(answer.body["error"].value("message", "").empty()) << answer.raw;
    }
    EXPECT_TRUE(server().Running()) << server().Log();
    EXPECT_EQ(Http(url(), "GET", "/api/models").status, 200);
    EXPECT_EQ(Http(url(), "GET", "/api/models/good").status, 200);
  }

  // The attempt's outcome could not be written: the answer is a server-side
  // error that names the cause, not a success and not a 4xx.
  void ExpectStorageErrorReported(const HttpResult& answer, const std::string& what,
                                  const std::string& cause) {
    ExpectAnsweredNotDead(answer, what);
    EXPECT_GE(answer.status, 500) << answer.raw;
    EXPECT_NE(answer.body["error"].value("message", "").find(cause), std::string::npos) << answer.raw;
  }

  // After the fault is gone and the server restarted: what was recorded
  // before is all there, and the interrupted attempt is closed.
  void ExpectNothingLostAfterRestart() {
    ASSERT_TRUE(StartServer());
    Json good = GetModelJson("good");
    EXPECT_EQ(good.value("total_loads", 0), good_before_.value("total_loads", -1));
    EXPECT_EQ(good.value("compatibility_status", ""), "compatible");
    EXPECT_EQ(good["attempts"].size(), good_before_["attempts"].size());
    Json victim = GetModelJson("victim");
    EXPECT_NE(victim.value("compatibility_status", ""), "testing");
    for (const auto& a : victim["attempts"]) EXPECT_FALSE(a["finished_at"].is_null()) << victim.dump();
    // Recorded before the restart: the startup cleanup found nothing to close.
    EXPECT_EQ(victim["attempts"], victim_before_["attempts"]) << victim.dump();
    ExpectServing();
  }

  // Once the fault is gone (no restart): the outcome kept in memory was
  // written, so `victim` has its real status and a closed attempt saying
  // how it failed (the fake engine aborts), and `good` loads again.
  void ExpectRecoveredWithoutRestart(const std::string& what) {
    HttpResult after = Http(url(), "POST", "/api/orchestrate/load", {{"model_name", "good"}});
    ExpectAnsweredNotDead(after, what);
    EXPECT_EQ(after.status, 200) << after.raw;
    Json victim = GetModelJson("victim");
    EXPECT_EQ(victim.value("compatibility_status", ""), "incompatible") << victim.dump();
    EXPECT_EQ(victim.value("total_failures", 0), 1) << victim.dump();
    ASSERT_FALSE(victim["attempts"].empty()) << victim.dump();
    const Json& last = victim["attempts"][0];
    EXPECT_EQ(last.value("outcome", ""), "crashed") << victim.dump();
    EXPECT_EQ(last.value("signal", ""), "SIGABRT") << victim.dump();
    EXPECT_EQ(last.value("status_after", ""), "incompatible") << victim.dump();
    EXPECT_TRUE(victim["last_error"].is_string() &&
                victim["last_error"].get<std::string>().find("could not be recorded") == std::string::npos)
        << victim.dump();
    ASSERT_EQ(Http(url(), "POST", "/api/orchestrate/unload", {{"model_name", "good"}}).status, 200);
    good_before_ = GetModelJson("good");  // what the restart must keep
    victim_before_ = victim;
  }

  Json good_before_;
  Json victim_before_;
  std::vector<std::string> immutable_;
  bool mounted_ = false;
};

TEST_F(StorageFaultTest, DiskFullDuringAnAttempt) {
  MW_REQUIRE(::geteuid() == 0, kRoot);
  std::string why;
  if (!MountSmallDisk("16m", &why))
    MW_MACHINE_CANNOT("mount a tmpfs as root (" << why << "): disk-full test");
  ASSERT_TRUE(StartServer());
  RegisterAndLoadGood();
  if (HasFatalFailure()) return;
  int64_t filled = 0;
  HttpResult answer = LoadVictimWith([&] { filled = FillDisk(data_dir() + "/filler"); });
  ASSERT_GT(filled, 0);
  ExpectStorageErrorReported(answer, "load finishing on a full disk", "disk is full");
  EXPECT_EQ(answer.status, 507) << answer.raw;
  EXPECT_NE(answer.body["error"].value("message", "").find("free space"), std::string::npos) << answer.raw;
  // Still full: loads answer the storage error (not 409 "victim is being
  // tested": victim is `testing` on disk only because its outcome waits).
  for (const char* model : {"good", "victim"}) {
    HttpResult again = Http(url(), "POST", "/api/orchestrate/load", {{"model_name", model}});
    ExpectAnsweredNotDead(again, std::string("new load of ") + model + " on a full disk");
    EXPECT_EQ(again.status, 507) << again.raw;
    EXPECT_NE(again.body["error"].value("message", "").find("'victim' is not recorded yet"), std::string::npos)
        << again.raw;
  }
  fs::remove(data_dir() + "/filler");
  // Nobody asks: the server writes the kept outcome by itself within seconds.
  EXPECT_TRUE(PollUntil([&] { return GetModelJson("victim").value("compatibility_status", "") == "incompatible"; },
                        milliseconds(15000)))
      << GetModelJson("victim").dump();
  ExpectRecoveredWithoutRestart("load after space came back");
  ExpectNothingLostAfterRestart();
}

TEST_F(StorageFaultTest, DatabaseReadOnlyDuringAnAttempt) {
  {
    MW_REQUIRE(::geteuid() == 0, kRoot);
    MW_REQUIRE(::access("/usr/bin/chattr", X_OK) == 0,
               "chattr (Debian package 'e2fsprogs'; scripts/bootstrap installs it)");
    std::string probe = scratch() + "/chattr-probe", out;
    std::ofstream(probe) << "x";
    if (RunProgram({"chattr", "+i", probe}, &out) != 0) {
      MW_MACHINE_CANNOT("chattr +i as root on this filesystem (" << out << "): read-only test");
    }
    RunProgram({"chattr", "-i", probe}, &out);
  }
  ASSERT_TRUE(StartServer());
  RegisterAndLoadGood();
  if (HasFatalFailure()) return;
  HttpResult answer = LoadVictimWith([&] {
    for (const char* suffix : {"", "-wal", "-shm"}) {
      std::string file = data_dir() + "/registry.db" + suffix;
      std::string out;
      if (fs::exists(file) && RunProgram({"chattr", "+i", file}, &out) == 0) immutable_.push_back(file);
    }
  });
  EXPECT_FALSE(immutable_.empty());
  ExpectStorageErrorReported(answer, "load finishing on a read-only database", "could not be recorded");
  // Said as what it is (not "500 internal: disk I/O error"): the file, and what to do.
  EXPECT_EQ(answer.status, 503) << answer.raw;
  EXPECT_EQ(answer.body["error"].value("code", ""), "storage_read_only") << answer.raw;
  const std::string message = answer.body["error"].value("message", "");
  EXPECT_NE(message.find("registry database '" + data_dir() + "/registry.db' is read-only"), std::string::npos)
      << answer.raw;
  EXPECT_NE(message.find("writable"), std::string::npos) << answer.raw;
  HttpResult again = Http(url(), "POST", "/api/orchestrate/load", {{"model_name", "good"}});
  ExpectAnsweredNotDead(again, "new load on a read-only database");
  EXPECT_EQ(again.status, 503) << again.raw;
  EXPECT_EQ(again.body["error"].value("code", ""), "storage_read_only") << again.raw;
  for (const std::string& file : immutable_) {
    std::string out;
    RunProgram({"chattr", "-i", file}, &out);
  }
  immutable_.clear();
  ExpectRecoveredWithoutRestart("load after the database became writable again");
  ExpectNothingLostAfterRestart();
}

}  // namespace
}  // namespace mw::testing_harness
