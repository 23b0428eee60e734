#pragma once
// Data-parallel tests with the ranks as threads of the test process, joined over loopback Gloo.
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <exception>
#include <functional>
#include <thread>
#include <vector>

#include "stunt/train/distributed.h"

namespace stunt::test {

/// A port the kernel reports free now (bound to port 0, then released).
inline int free_port() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address));
  socklen_t length = sizeof(address);
  getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length);
  close(fd);
  return ntohs(address.sin_port);
}

/// Runs `body(rank)` for every rank of a world of `world` threads joined in one process group;
/// rethrows the first failure.
inline void run_ranks(int world, const std::function<void(train::ProcessGroup&)>& body) {
  const int port = free_port();
  std::vector<std::exception_ptr> failures(static_cast<size_t>(world));
  std::vector<std::thread> threads;
  for (int rank = 0; rank < world; ++rank) {
    threads.emplace_back([&, rank] {
      try {
        train::DistributedEnvironment env;
        env.rank = rank;
        env.world_size = world;
        env.master_port = port;
        env.join_timeout = std::chrono::seconds(60);
        env.timeout = std::chrono::seconds(60);
        train::ProcessGroup group(env);
        body(group);
      } catch (...) {
        failures[static_cast<size_t>(rank)] = std::current_exception();
      }
    });
  }
  for (auto& t : threads) t.join();
  for (const auto& failure : failures) {
    if (failure) std::rethrow_exception(failure);
  }
}

}  // namespace stunt::test
