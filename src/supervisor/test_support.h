// Helpers for tests that run real processes (supervisor tests only).
#pragma once

#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "supervisor/child_process.h"

namespace mw::testing_support {

inline std::string BinDir() {
  const char* dir = std::getenv("MW_BIN_DIR");
  if (dir != nullptr && *dir != '\0') return dir;
  std::string keeper = DefaultHelperPath("mw-keeper");
  return keeper.substr(0, keeper.rfind('/'));
}

inline std::string FakeEngine() { return BinDir() + "/mw-fake-engine"; }

// A fresh directory under $TMPDIR (left for the OS to clean; tiny).
inline std::string TempDir() {
  const char* base = std::getenv("TMPDIR");
  std::string tmpl = std::string(base != nullptr ? base : "/tmp") + "/mw-supervisor-test-XXXXXX";
  char* made = ::mkdtemp(tmpl.data());
  return made != nullptr ? std::string(made) : std::string("/tmp");
}

// Integers in a file once it exists (written by rename, so complete), or
// nothing after ~10 s.
inline std::vector<int> WaitForFile(const std::string& path) {
  for (int i = 0; i < 1000; ++i) {
    std::ifstream in(path);
    if (in) {
      std::vector<int> values;
      int v;
      while (in >> v) values.push_back(v);
      return values;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return {};
}

// True when `pid` is gone or a zombie, waiting up to `within`.
inline bool ProcessGone(int pid, std::chrono::milliseconds within = std::chrono::milliseconds(2000)) {
  auto deadline = std::chrono::steady_clock::now() + within;
  for (;;) {
    if (::kill(pid, 0) != 0) return true;
    std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
    std::string content;
    std::getline(stat, content);
    size_t paren = content.rfind(')');
    if (paren != std::string::npos && paren + 2 < content.size() && content[paren + 2] == 'Z') return true;
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

}  // namespace mw::testing_support
