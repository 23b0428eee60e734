#pragma once
// SIGINT and SIGTERM ask a training run to stop after the current step (and write a checkpoint)
// instead of killing it mid-write.

#include <csignal>

namespace stunt::train::detail {

/// While alive, SIGINT and SIGTERM set a flag instead of ending the process; the previous
/// handlers come back on destruction. One at a time per process.
class SignalStop {
 public:
  SignalStop();
  ~SignalStop();
  SignalStop(const SignalStop&) = delete;
  SignalStop& operator=(const SignalStop&) = delete;
  bool requested() const;
  /// "SIGINT" or "SIGTERM" once requested.
  const char* signal_name() const;

 private:
  struct sigaction previous_int_ {};
  struct sigaction previous_term_ {};
};

}  // namespace stunt::train::detail
