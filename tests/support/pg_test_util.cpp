#include "support/pg_test_util.h"

#include <stdlib.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <vector>
#include <mutex>
#include <pqxx/pqxx>

namespace mw::testing_util {
namespace {

// Runs the cluster script on `dir`; its last output line is the URL or "SKIP: ...".
int RunScriptOn(const std::string& dir, const std::string& command, std::string* last_line) {
  const std::string cmd = std::string(MW_TEST_PG_SCRIPT) + " " + command + " " + dir + " 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  if (p == nullptr) return -1;
  std::array<char, 4096> buf{};
  std::string out;
  while (fgets(buf.data(), buf.size(), p) != nullptr) out += buf.data();
  const int rc = pclose(p);
  while (!out.empty() && out.back() == '\n') out.pop_back();
  const size_t nl = out.rfind('\n');
  *last_line = nl == std::string::npos ? out : out.substr(nl + 1);
  if (rc != 0) *last_line = out;  // the whole log explains a failure
  return rc;
}

int RunScript(const std::string& command, std::string* last_line) {
  return RunScriptOn(PgTestClusterDir(), command, last_line);
}

bool g_started_here = false;

void StopIfStartedHere() {
  std::string ignored;
  if (g_started_here) RunScript("stop", &ignored);
}

// The cluster's base URL, starting it once per process if needed.
// Returns "" with skip or error set otherwise.
std::string BaseUrl(std::string* skip_reason, std::string* error) {
  static std::mutex mu;
  static std::string url, skip, err;
  static bool done = false;
  std::lock_guard<std::mutex> lock(mu);
  if (!done) {
    done = true;
    const bool running = access((PgTestClusterDir() + "/data/postmaster.pid").c_str(), F_OK) == 0;
    std::string line;
    const int rc = RunScript("start", &line);
    if (rc != 0) {
      err = "could not start the test PostgreSQL cluster: " + line;
    } else if (line.rfind("SKIP: ", 0) == 0) {
      skip = line.substr(6);
    } else {
      url = line;
      if (!running) {
        // Not started by the CTest fixture: this process stops it at exit.
        g_started_here = true;
        std::atexit(StopIfStartedHere);
      }
    }
  }
  *skip_reason = skip;
  *error = err;
  return url;
}

std::string WithSearchPath(const std::string& base, const std::string& schema) {
  return base + "&options=-csearch_path%3D" + schema;
}

// Runs each of `sqls` on a connection of its own: "" or the error.
std::string ExecOn(const std::string& url, std::initializer_list<std::string> sqls) {
  try {
    pqxx::connection c(url);
    pqxx::nontransaction n(c);
    for (const std::string& sql : sqls) n.exec(sql);
    return "";
  } catch (const std::exception& e) {
    return e.what();
  }
}

// First column of the first row, as text ("" if none or on error).
std::string QueryOn(const std::string& url, const std::string& sql) {
  try {
    pqxx::connection c(url);
    pqxx::nontransaction n(c);
    const auto r = n.exec(sql);
    if (r.empty() || r[0][0].is_null()) return "";
    return r[0][0].as<std::string>();
  } catch (const std::exception&) {
    return "";
  }
}

}  // namespace

std::string PgTestClusterDir() { return MW_TEST_PG_DIR; }

PgPrivateCluster::PgPrivateCluster() {
  static std::atomic<int> counter{0};
  dir_ = PgTestClusterDir() + "-own" + std::to_string(getpid()) + "-" + std::to_string(counter++);
}

PgPrivateCluster::~PgPrivateCluster() {
  std::string ignored;
  RunScriptOn(dir_, "stop", &ignored);
}

bool PgPrivateCluster::Start(std::string* skip_reason, std::string* error) {
  std::string line;
  if (RunScriptOn(dir_, "start", &line) != 0) {
    *error = "could not start a private PostgreSQL cluster: " + line;
    return false;
  }
  if (line.rfind("SKIP: ", 0) == 0) {
    *skip_reason = line.substr(6);
    return false;
  }
  url_ = line;
  return true;
}

std::string PgPrivateCluster::Restart() {
  std::string line;
  return RunScriptOn(dir_, "restart", &line) == 0 ? "" : line;
}

std::string PgPrivateCluster::Halt() {
  std::string line;
  return RunScriptOn(dir_, "halt", &line) == 0 ? "" : line;
}

std::string PgPrivateCluster::Exec(std::initializer_list<std::string> sqls) const { return ExecOn(url_, sqls); }

std::string PgPrivateCluster::Query(const std::string& sql) const { return QueryOn(url_, sql); }

std::unique_ptr<PgTestSchema> PgTestSchema::Create(std::string* skip_reason, std::string* error) {
  const std::string base = BaseUrl(skip_reason, error);
  if (base.empty()) return nullptr;
  static std::atomic<int> counter{0};
  const std::string name = "t" + std::to_string(getpid()) + "_" + std::to_string(counter++);
  std::unique_ptr<PgTestSchema> schema(new PgTestSchema(base, name));
  const std::string err = schema->Exec("DROP SCHEMA IF EXISTS " + name + " CASCADE; CREATE SCHEMA " + name);
  if (!err.empty()) {
    *error = "creating schema " + name + ": " + err;
    return nullptr;
  }
  return schema;
}

PgTestSchema::PgTestSchema(std::string base_url, std::string name)
    : base_url_(std::move(base_url)), name_(std::move(name)), url_(WithSearchPath(base_url_, name_)) {}

PgTestSchema::~PgTestSchema() { (void)Exec("DROP SCHEMA IF EXISTS " + name_ + " CASCADE"); }

std::string PgTestSchema::Exec(const std::string& sql) const {
  return ExecOn(url_, {"SET client_min_messages = warning", sql});
}

std::string PgTestSchema::Query(const std::string& sql) const { return QueryOn(url_, sql); }

std::string BackendName(BackendKind kind) { return kind == BackendKind::kSqlite ? "SQLite" : "PostgreSQL"; }

RegistryTarget::RegistryTarget(BackendKind kind) : kind_(kind) {
  const char* base = std::getenv("TMPDIR");
  std::string tmpl = std::string(base != nullptr && *base != '\0' ? base : "/tmp") + "/mw-registry-XXXXXX";
  std::vector<char> buf(tmpl.begin(), tmpl.end());
  buf.push_back('\0');
  if (mkdtemp(buf.data()) != nullptr) dir_ = buf.data();
}

RegistryTarget::~RegistryTarget() {
  pg_.reset();
  std::error_code ec;
  if (!dir_.empty()) std::filesystem::remove_all(dir_, ec);
}

bool RegistryTarget::Prepare(std::string* skip_reason, std::string* error) {
  if (dir_.empty()) {
    *error = "mkdtemp failed";
    return false;
  }
  if (kind_ == BackendKind::kSqlite) {
    location_ = dir_ + "/registry.db";
    return true;
  }
  pg_ = PgTestSchema::Create(skip_reason, error);
  if (!pg_) return false;
  location_ = pg_->url();
  return true;
}

}  // namespace mw::testing_util
