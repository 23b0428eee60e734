#pragma once
/// Data-parallel training over LibTorch's c10d with its Gloo backend (DESIGN.md, "Training and
/// scale-out"). Processes are launched the way torchrun launches them: each reads RANK,
/// WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT, rank 0 serves the rendezvous, and the
/// trainer averages gradients across ranks after every step's backward passes.
///
/// The c10d and Gloo types stay inside the implementation: code using this header needs neither
/// set of headers.

#include <ATen/core/Tensor.h>

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace stunt::train {

/// Where this process stands in a data-parallel run.
struct DistributedEnvironment {
  int rank = 0;
  int world_size = 1;
  /// The rank among the processes of this machine (torchrun's LOCAL_RANK).
  int local_rank = 0;
  /// Rank 0's address and the port its rendezvous store listens on.
  std::string master_addr = "127.0.0.1";
  int master_port = 29500;
  /// torchrun's agent serves the rendezvous store itself (TORCHELASTIC_USE_AGENT_STORE=True):
  /// then every rank, rank 0 too, connects to it as a client.
  bool launcher_serves_store = false;
  /// How long to wait for the other ranks to join (torch's store default).
  std::chrono::seconds join_timeout{300};
  /// How long any one collective may wait for the other ranks (torch's Gloo default).
  std::chrono::seconds timeout{1800};
};

/// The run torchrun's variables describe; nothing when WORLD_SIZE is unset. A variable that is
/// malformed, missing beside WORLD_SIZE, or out of range is a ValueError naming it.
std::optional<DistributedEnvironment> distributed_environment();

/// The collectives training needs, over CPU tensors. Every rank must make the same calls in the
/// same order; a rank that dies makes the others' next call fail with an IoError rather than
/// wait forever.
class ProcessGroup {
 public:
  /// Joins the group: rank 0 listens on master_port, the others connect to it. IoError when the
  /// rendezvous fails within the timeout.
  explicit ProcessGroup(const DistributedEnvironment& environment);
  ~ProcessGroup();
  ProcessGroup(const ProcessGroup&) = delete;
  ProcessGroup& operator=(const ProcessGroup&) = delete;

  int rank() const;
  int world_size() const;

  /// Replaces every tensor by its sum over the ranks. Tensors of one dtype travel packed in
  /// buckets of about 32 MB, so a model's gradients take a few messages.
  void sum(const std::vector<at::Tensor>& tensors);
  /// Replaces every floating-point tensor by its mean over the ranks.
  void average(const std::vector<at::Tensor>& tensors);
  /// Replaces every tensor by rank `root`'s.
  void broadcast(const std::vector<at::Tensor>& tensors, int root = 0);
  /// Every rank's `tensor` (one shape and dtype on all ranks), in rank order.
  std::vector<at::Tensor> all_gather(const at::Tensor& tensor);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace stunt::train
