#include "common/log.h"

#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "common/time_util.h"

namespace mw {
namespace {

LogLevel InitialLevel() {
  const char* env = std::getenv("MODELWARDEN_LOG");
  if (env == nullptr) return LogLevel::kInfo;
  if (std::strcmp(env, "debug") == 0) return LogLevel::kDebug;
  if (std::strcmp(env, "warn") == 0) return LogLevel::kWarn;
  if (std::strcmp(env, "error") == 0) return LogLevel::kError;
  return LogLevel::kInfo;
}

std::atomic<LogLevel>& Level() {
  static std::atomic<LogLevel> level{InitialLevel()};
  return level;
}

std::atomic<LogFormat>& Format() {
  static std::atomic<LogFormat> format{LogFormat::kText};
  return format;
}

void AppendJsonString(std::string& out, std::string_view s) {
  out += '"';
  for (unsigned char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20) {
          static const char* kHex = "0123456789abcdef";
          out += "\\u00";
          out += kHex[c >> 4];
          out += kHex[c & 0xF];
        } else {
          out += static_cast<char>(c);  // UTF-8 passes through
        }
    }
  }
  out += '"';
}

bool IsFieldKey(std::string_view key) {
  if (key.empty() || key.size() > 64) return false;
  for (char c : key) {
    if (!((c >= 'a' && c <= 'z') || c == '_')) return false;
  }
  return key != "time" && key != "level" && key != "component" && key != "message";
}

// An integer that JSON can carry as a number as is (no leading zeros, no sign games).
bool IsJsonInteger(std::string_view v) {
  size_t i = v.size() > 1 && v[0] == '-' ? 1 : 0;
  if (i == v.size() || v.size() - i > 15) return false;
  if (v[i] == '0' && v.size() - i > 1) return false;
  for (; i < v.size(); ++i) {
    if (v[i] < '0' || v[i] > '9') return false;
  }
  return true;
}

const char* LevelName(LogLevel l) {
  switch (l) {
    case LogLevel::kDebug: return "debug";
    case LogLevel::kInfo: return "info";
    case LogLevel::kWarn: return "warn";
    case LogLevel::kError: return "error";
  }
  return "?";
}

}  // namespace

void SetLogLevel(LogLevel level) { Level().store(level); }
LogLevel GetLogLevel() { return Level().load(); }
void SetLogFormat(LogFormat format) { Format().store(format); }
LogFormat GetLogFormat() { return Format().load(); }

std::string FormatLogLine(LogFormat format, std::string_view time, LogLevel level, std::string_view subsystem,
                          std::string_view message) {
  std::string out;
  if (format == LogFormat::kText) {
    out.reserve(time.size() + subsystem.size() + message.size() + 16);
    out.append(time).append(" ").append(LevelName(level)).append(" [").append(subsystem).append("] ");
    out.append(message).append("\n");
    return out;
  }
  out.reserve(message.size() * 2 + 96);
  out += "{\"time\":";
  AppendJsonString(out, time);
  out += ",\"level\":";
  AppendJsonString(out, LevelName(level));
  out += ",\"component\":";
  AppendJsonString(out, subsystem);
  out += ",\"message\":";
  AppendJsonString(out, message);
  // key=value words of the message as fields; the first of a repeated key wins.
  std::vector<std::string_view> seen;
  size_t pos = 0;
  while (pos < message.size()) {
    size_t end = message.find_first_of(" \n", pos);
    if (end == std::string_view::npos) end = message.size();
    std::string_view word = message.substr(pos, end - pos);
    pos = end + 1;
    const size_t eq = word.find('=');
    if (eq == std::string_view::npos || eq + 1 >= word.size()) continue;
    std::string_view key = word.substr(0, eq);
    std::string_view value = word.substr(eq + 1);
    // "(forced=true)" and "pid=42," read as forced=true and pid=42.
    if (!key.empty() && key.front() == '(') key.remove_prefix(1);
    while (!value.empty() && (value.back() == ',' || value.back() == ')' || value.back() == ';' ||
                              value.back() == ':')) {
      value.remove_suffix(1);
    }
    if (value.empty() || !IsFieldKey(key)) continue;
    bool dup = false;
    for (auto k : seen) dup = dup || k == key;
    if (dup) continue;
    seen.push_back(key);
    out += ',';
    AppendJsonString(out, key);
    out += ':';
    if (IsJsonInteger(value)) {
      out.append(value);
    } else {
      AppendJsonString(out, value);
    }
  }
  out += "}\n";
  return out;
}

LogLine::LogLine(LogLevel level, std::string_view subsystem)
    : enabled_(level >= GetLogLevel()), level_(level), subsystem_(subsystem) {}

LogLine::~LogLine() {
  if (!enabled_) return;
  const std::string s = FormatLogLine(GetLogFormat(), NowIso8601(), level_, subsystem_, stream_.str());
  // A failed log write has nowhere to be reported; ignore it deliberately.
  [[maybe_unused]] ssize_t n = ::write(STDERR_FILENO, s.data(), s.size());
}

}  // namespace mw
