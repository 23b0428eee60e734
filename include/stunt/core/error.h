#pragma once
/// Errors and checks. User errors throw a stunt::Error subclass whose message says what,
/// where, what was expected and how to fix it; STUNT_ASSERT is for our own invariants.

#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>

namespace stunt {

/// Base of every error the library throws. The CLI prints what() on one line and exits 1.
class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message) : std::runtime_error(message) {}
};

/// A value is out of range or inconsistent (a user's argument, config value or recipe field).
class ValueError : public Error {
 public:
  using Error::Error;
};

/// A file cannot be opened, read or written.
class IoError : public Error {
 public:
  using Error::Error;
};

/// A file was read but breaks the rules of its format (safetensors, index, pickle, archive).
class FormatError : public IoError {
 public:
  using IoError::IoError;
};

/// A recipe cannot be parsed or validated; the message names the file and the path inside it.
class RecipeError : public ValueError {
 public:
  using ValueError::ValueError;
};

/// Something a user asked for that Stunt does not implement yet.
class NotImplementedError : public Error {
 public:
  using Error::Error;
};

/// A modifier lifecycle method or event was called out of order.
class LifecycleError : public Error {
 public:
  using Error::Error;
};

/// A long run stopped on SIGINT or SIGTERM after saving its progress; rerunning with resume
/// continues it. The CLI exits 130, as a shell does for an interrupted command.
class Interrupted : public Error {
 public:
  using Error::Error;
};

/// An invariant of Stunt itself was broken: a bug, never the user's fault.
class InternalError : public Error {
 public:
  using Error::Error;
};

/// Concatenates anything printable with operator<< into one string (like c10::str).
template <typename... Args>
std::string str(const Args&... args) {
  std::ostringstream out;
  (out << ... << args);
  return out.str();
}

/// `text` with control characters and bytes that are not valid UTF-8 written as \xNN, so that
/// messages quoting hostile input stay one printable line.
std::string printable(std::string_view text);
/// Length of the well-formed UTF-8 sequence starting at text[i], 0 when ill-formed (overlong
/// forms, surrogates and code points above U+10FFFF included, per RFC 3629).
size_t utf8_sequence_length(std::string_view text, size_t i);
/// True when `text` is well-formed UTF-8.
bool is_valid_utf8(std::string_view text);

namespace detail {
[[noreturn]] void throw_internal_error(const char* condition, const char* file, int line,
                                       const std::string& message);
}  // namespace detail

}  // namespace stunt

/// Throws stunt::ValueError with the concatenated message when cond is false.
/// The message is built only on failure.
#define STUNT_CHECK(cond, ...)                                         \
  do {                                                                 \
    if (!(cond)) throw ::stunt::ValueError(::stunt::str(__VA_ARGS__)); \
  } while (false)

/// Like STUNT_CHECK with an explicit error class: STUNT_CHECK_AS(FormatError, cond, "...").
#define STUNT_CHECK_AS(ErrorClass, cond, ...)                          \
  do {                                                                 \
    if (!(cond)) throw ::stunt::ErrorClass(::stunt::str(__VA_ARGS__)); \
  } while (false)

/// An invariant of ours, not a user error: throws stunt::InternalError naming file and line.
#define STUNT_ASSERT(cond, ...)                                                           \
  do {                                                                                    \
    if (!(cond))                                                                          \
      ::stunt::detail::throw_internal_error(#cond, __FILE__, __LINE__,                    \
                                            ::stunt::str("" __VA_OPT__(, ) __VA_ARGS__)); \
  } while (false)
