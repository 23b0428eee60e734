#include "stunt/core/logging.h"

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <atomic>
#include <cstdlib>
#include <mutex>

namespace stunt::log {
namespace {

std::atomic<Level> g_level{Level::Info};

std::shared_ptr<spdlog::logger> logger() {
  static std::once_flag once;
  static std::shared_ptr<spdlog::logger> instance;
  std::call_once(once, [] {
    instance = spdlog::stderr_color_mt("stunt");
    instance->set_pattern("[%H:%M:%S] %^%l%$: %v");
    instance->set_level(spdlog::level::trace);  // filtering happens in write()
  });
  return instance;
}

spdlog::level::level_enum to_spdlog(Level level) {
  switch (level) {
    case Level::Trace:
      return spdlog::level::trace;
    case Level::Debug:
      return spdlog::level::debug;
    case Level::Info:
      return spdlog::level::info;
    case Level::Warn:
      return spdlog::level::warn;
    case Level::Error:
      return spdlog::level::err;
    case Level::Off:
      return spdlog::level::off;
  }
  return spdlog::level::info;
}

}  // namespace

Level parse_level(const std::string& name) {
  if (name == "trace") return Level::Trace;
  if (name == "debug") return Level::Debug;
  if (name == "info") return Level::Info;
  if (name == "warn" || name == "warning") return Level::Warn;
  if (name == "error") return Level::Error;
  if (name == "off") return Level::Off;
  throw ValueError(
      str("unknown log level '", name, "'; expected one of trace, debug, info, warn, error, off"));
}

void set_level(Level level) { g_level = level; }

Level level() { return g_level; }

Level init_from_environment() {
  if (const char* value = std::getenv("STUNT_LOG_LEVEL"); value != nullptr && *value != '\0') {
    try {
      set_level(parse_level(value));
    } catch (const ValueError& e) {
      throw ValueError(str("STUNT_LOG_LEVEL: ", e.what()));
    }
  }
  return level();
}

void write(Level level, const std::string& message) {
  if (level < g_level.load() || level == Level::Off) return;
  logger()->log(to_spdlog(level), "{}", message);
}

}  // namespace stunt::log
