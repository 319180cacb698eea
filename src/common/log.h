// Minimal logging to stderr: one line per event, with a subsystem tag.
//   MW_LOG(kInfo, "supervisor") << "worker started model=" << name << " pid=" << pid;
// Thread-safe (each line is written with a single write()). Never log secrets.
#pragma once

#include <sstream>
#include <string_view>

namespace mw {

enum class LogLevel { kDebug = 0, kInfo, kWarn, kError };

// Lines below this level are dropped. Default kInfo; MODELWARDEN_LOG=debug|info|warn|error.
void SetLogLevel(LogLevel level);
LogLevel GetLogLevel();

class LogLine {
 public:
  LogLine(LogLevel level, std::string_view subsystem);
  ~LogLine();
  LogLine(const LogLine&) = delete;
  LogLine& operator=(const LogLine&) = delete;
  template <typename T>
  LogLine& operator<<(const T& v) {
    if (enabled_) stream_ << v;
    return *this;
  }

 private:
  bool enabled_;
  std::ostringstream stream_;
};

}  // namespace mw

#define MW_LOG(level, subsystem) ::mw::LogLine(::mw::LogLevel::level, subsystem)
