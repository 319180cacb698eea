// One server per data directory (a lock of our own, not SQLite's exclusive
// mode), and the registry readable by other programs while the server runs
// and loads (SPEC §13).
#include <gtest/gtest.h>

#include <future>
#include <thread>

#include "harness.h"
#include "require.h"

namespace mw::itest {
namespace {

namespace fs = std::filesystem;

const char* kSqlite3 = "/usr/bin/sqlite3";

TEST(DataDirLockTest, SecondServerOnTheSameDataDirectoryNamesTheFirstOnesPid) {
  TempDir dir;
  const fs::path data = dir.path() / "data";
  Server first(data);
  ASSERT_TRUE(first.started()) << first.startup_output();
  // `timeout`: a second server that wrongly started would serve forever.
  auto serve = [&](const fs::path& data_dir) {
    return RunProcess({"/usr/bin/timeout", "30", (BinDir() / "modelwarden").string(), "serve", "--port", "0",
                       "--data-dir", data_dir.string()},
                      {{"XDG_CONFIG_HOME", (dir.path() / "no-config").string()}});
  };
  ProcessResult second = serve(data);
  EXPECT_EQ(second.exit_code, 1) << second.out << second.err;
  EXPECT_NE(second.err.find("another modelwarden server (pid " + std::to_string(first.pid()) + ")"),
            std::string::npos)
      << second.err;
  EXPECT_NE(second.err.find((data / "modelwarden.lock").string()), std::string::npos) << second.err;
  EXPECT_EQ(second.out.find("listening"), std::string::npos) << second.out;
  EXPECT_TRUE(first.Alive());
  // The same directory through another path (a symlink) is the same lock.
  fs::create_directory_symlink(data, dir.path() / "alias");
  ProcessResult aliased = serve(dir.path() / "alias");
  EXPECT_EQ(aliased.exit_code, 1) << aliased.err;
  // Once the first has stopped (or died), the directory is free again.
  first.Kill();
  Server next(data);
  EXPECT_TRUE(next.started()) << next.startup_output();
}

TEST(DataDirLockTest, RegistryIsReadableByAnotherProgramDuringALoad) {
  MW_REQUIRE(fs::exists(kSqlite3), "sqlite3 (Debian package 'sqlite3'; scripts/bootstrap installs it)");
  TempDir dir;
  const fs::path data = dir.path() / "data";
  const std::string db = (data / "registry.db").string();
  Server server(data, AllowApiCommands(dir.path()));
  ASSERT_TRUE(server.started()) << server.startup_output();
  ASSERT_EQ(server.Call("POST", "/api/models", CommandModel("slow", {"--sleep-ms", "1500", "--then", "ready"})).status,
            201);
  auto load = std::async(std::launch::async, [&] {
    return server.Call("POST", "/api/orchestrate/load", R"({"model_name":"slow"})").status;
  });
  // Another connection sees the durable `testing` mark while the load runs.
  bool saw_testing = false;
  int reads = 0;
  for (int i = 0; i < 300 && !saw_testing; ++i) {
    ProcessResult r = RunProcess({kSqlite3, db, "SELECT compatibility_status FROM models WHERE model_name='slow'"});
    ASSERT_EQ(r.exit_code, 0) << r.err;  // "database is locked" with SQLite's exclusive mode
    ++reads;
    saw_testing = r.out == "testing\n";
    if (!saw_testing) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_TRUE(saw_testing) << "after " << reads << " reads";
  EXPECT_EQ(load.get(), 200);
  // And a whole dump while the model is loaded.
  ProcessResult dump = RunProcess({kSqlite3, db, ".dump"});
  ASSERT_EQ(dump.exit_code, 0) << dump.err;
  EXPECT_NE(dump.out.find("CREATE TABLE models"), std::string::npos);
  EXPECT_NE(dump.out.find("'slow'"), std::string::npos);
  EXPECT_NE(dump.out.find("'compatible'"), std::string::npos);
  EXPECT_EQ(dump.out.find("ROLLBACK"), std::string::npos) << "the dump ended in an error";
}

}  // namespace
}  // namespace mw::itest
