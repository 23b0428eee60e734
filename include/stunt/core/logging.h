#pragma once
/// Logging. The library logs to stderr through one spdlog logger named "stunt"; it never
/// writes to stdout. The level comes from set_log_level() or the STUNT_LOG_LEVEL variable.

#include <string>

#include "stunt/core/error.h"

namespace stunt::log {

enum class Level { Trace, Debug, Info, Warn, Error, Off };

/// Parses "trace", "debug", "info", "warn", "error" or "off"; throws ValueError otherwise.
Level parse_level(const std::string& name);
/// Sets the level of the library's logger.
void set_level(Level level);
/// Reads STUNT_LOG_LEVEL (if set) and applies it; returns the level now in force.
Level init_from_environment();
Level level();

void write(Level level, const std::string& message);

template <typename... Args>
void debug(const Args&... args) {
  if (level() <= Level::Debug) write(Level::Debug, str(args...));
}
template <typename... Args>
void info(const Args&... args) {
  if (level() <= Level::Info) write(Level::Info, str(args...));
}
template <typename... Args>
void warn(const Args&... args) {
  if (level() <= Level::Warn) write(Level::Warn, str(args...));
}
template <typename... Args>
void error(const Args&... args) {
  if (level() <= Level::Error) write(Level::Error, str(args...));
}

}  // namespace stunt::log
