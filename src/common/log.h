// Minimal logging to stderr: one line per event, with a subsystem tag.
//   MW_LOG(kInfo, "supervisor") << "worker started model=" << name << " pid=" << pid;
// Thread-safe (each line is written with a single write()). Never log secrets.
//
// Two formats (SetLogFormat; the server sets it from the config's log_format):
//   text (default)  2026-01-02T03:04:05.678Z info [supervisor] worker started model=phi pid=42
//   json            {"time":"2026-01-02T03:04:05.678Z","level":"info","component":"supervisor",
//                    "message":"worker started model=phi pid=42","model":"phi","pid":42}
// In JSON every `key=value` word of the message (key: [a-z_]+) is also a
// field of its own (a number when the value is an integer), unless the key
// is time, level, component or message; one object per line.
#pragma once

#include <sstream>
#include <string>
#include <string_view>

namespace mw {

enum class LogLevel { kDebug = 0, kInfo, kWarn, kError };
enum class LogFormat { kText, kJson };

// Lines below this level are dropped. Default kInfo; MODELWARDEN_LOG=debug|info|warn|error.
void SetLogLevel(LogLevel level);
LogLevel GetLogLevel();
void SetLogFormat(LogFormat format);
LogFormat GetLogFormat();

// The line a message becomes in `format` (with its trailing newline); `time` is ISO 8601.
std::string FormatLogLine(LogFormat format, std::string_view time, LogLevel level, std::string_view subsystem,
                          std::string_view message);

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
  LogLevel level_;
  std::string_view subsystem_;
  std::ostringstream stream_;
};

}  // namespace mw

#define MW_LOG(level, subsystem) ::mw::LogLine(::mw::LogLevel::level, subsystem)
