// Test helpers for the PostgreSQL registry backend: one private cluster per
// build (tests/pg/pg-cluster, started by the CTest fixture `pg_cluster`, or
// by the first test process that needs it when a test binary runs on its
// own), and a fresh schema per test, so tests never see each other's rows.
#pragma once

#include <initializer_list>
#include <memory>
#include <string>

namespace mw::testing_util {

class PgTestSchema {
 public:
  // A new empty schema in the test cluster (starting the cluster if it is
  // not running). nullptr with `*skip_reason` set when PostgreSQL cannot be
  // found on this machine (a test then calls GTEST_SKIP() << *skip_reason);
  // a cluster that exists but fails to start is a failure, not a skip.
  static std::unique_ptr<PgTestSchema> Create(std::string* skip_reason, std::string* error);
  ~PgTestSchema();  // drops the schema
  PgTestSchema(const PgTestSchema&) = delete;
  PgTestSchema& operator=(const PgTestSchema&) = delete;

  // A registry URL whose search_path is this schema.
  const std::string& url() const { return url_; }
  const std::string& name() const { return name_; }
  // Raw SQL in this schema (no registry): "" on success, else the error.
  std::string Exec(const std::string& sql) const;
  // First column of the first row, as text ("" if none or on error).
  std::string Query(const std::string& sql) const;

 private:
  PgTestSchema(std::string base_url, std::string name);
  std::string base_url_;
  std::string name_;
  std::string url_;
};

// Which registry backend a parameterized test runs on.
enum class BackendKind { kSqlite, kPostgres };
inline constexpr BackendKind kAllBackends[] = {BackendKind::kSqlite, BackendKind::kPostgres};
// "SQLite" / "PostgreSQL": names for INSTANTIATE_TEST_SUITE_P.
std::string BackendName(BackendKind kind);
// The name generator of INSTANTIATE_TEST_SUITE_P over BackendKind.
struct BackendNamer {
  template <typename ParamInfo>
  std::string operator()(const ParamInfo& p) const {
    return BackendName(p.param);
  }
};

// Where one test's registry lives: registry.db in a fresh temp directory
// (SQLite) or a fresh schema of the test cluster (PostgreSQL).
class RegistryTarget {
 public:
  explicit RegistryTarget(BackendKind kind);
  ~RegistryTarget();
  RegistryTarget(const RegistryTarget&) = delete;
  RegistryTarget& operator=(const RegistryTarget&) = delete;
  // False with `*skip_reason` (PostgreSQL not found) or `*error` set.
  bool Prepare(std::string* skip_reason, std::string* error);
  BackendKind kind() const { return kind_; }
  // What Registry::Open takes: a file path or a postgresql:// URL.
  const std::string& location() const { return location_; }
  // A scratch directory (SQLite: the one holding registry.db).
  const std::string& dir() const { return dir_; }
  PgTestSchema* pg() const { return pg_.get(); }

 private:
  BackendKind kind_;
  std::string dir_;
  std::string location_;
  std::unique_ptr<PgTestSchema> pg_;
};

// The shared cluster's directory.
std::string PgTestClusterDir();

// A cluster of one test's own, for tests that stop or crash PostgreSQL
// (which would break the other tests sharing the common one). Stopped and
// removed by the destructor. Starting one costs an initdb (~1 s).
class PgPrivateCluster {
 public:
  PgPrivateCluster();
  ~PgPrivateCluster();
  PgPrivateCluster(const PgPrivateCluster&) = delete;
  PgPrivateCluster& operator=(const PgPrivateCluster&) = delete;
  // Starts it: false with `*skip_reason` (PostgreSQL not found) or `*error`.
  bool Start(std::string* skip_reason, std::string* error);
  // Its base URL (database postgres, user postgres).
  const std::string& url() const { return url_; }
  // Stops it at once (as a crash would: every connection breaks) and, for
  // Restart, starts it again. "" on success, else the script's output.
  std::string Restart();
  std::string Halt();
  // Raw SQL on its base URL, each statement of `sqls` on its own (ALTER
  // SYSTEM refuses a transaction block): "" on success, else the error.
  std::string Exec(std::initializer_list<std::string> sqls) const;
  // First column of the first row, as text ("" if none or on error).
  std::string Query(const std::string& sql) const;

 private:
  std::string dir_;
  std::string url_;
};

}  // namespace mw::testing_util
