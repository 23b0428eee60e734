#include "detail/signal_stop.h"

#include <atomic>

namespace stunt::train::detail {
namespace {

// Written by the handler, read by the loop: lock-free atomics are async-signal-safe.
std::atomic<int> g_signal{0};

extern "C" void request_stop(int signal) { g_signal.store(signal); }

}  // namespace

SignalStop::SignalStop() {
  g_signal.store(0);
  struct sigaction action {};
  action.sa_handler = request_stop;
  sigemptyset(&action.sa_mask);
  // Interrupted system calls resume; a second signal gets the default action (a second Ctrl-C
  // ends the process at once).
  action.sa_flags = SA_RESTART | SA_RESETHAND;
  sigaction(SIGINT, &action, &previous_int_);
  sigaction(SIGTERM, &action, &previous_term_);
}

SignalStop::~SignalStop() {
  sigaction(SIGINT, &previous_int_, nullptr);
  sigaction(SIGTERM, &previous_term_, nullptr);
}

bool SignalStop::requested() const { return g_signal.load() != 0; }

const char* SignalStop::signal_name() const {
  return g_signal.load() == SIGTERM ? "SIGTERM" : "SIGINT";
}

}  // namespace stunt::train::detail
