#include "stunt/train/distributed.h"

#include <ATen/ATen.h>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

#include <cstdlib>
#include <functional>
#include <map>

#include "stunt/core/error.h"
#include "stunt/core/logging.h"

namespace stunt::train {
namespace {

/// Gradients travel in flat buffers of about this size: few messages, bounded extra memory.
constexpr int64_t kBucketBytes = 32 << 20;

std::optional<std::string> variable(const char* name) {
  const char* value = std::getenv(name);
  if (value == nullptr || *value == '\0') return std::nullopt;
  return std::string(value);
}

int integer_variable(const char* name, const std::string& value, int min, int max) {
  size_t used = 0;
  long parsed = 0;
  try {
    parsed = std::stol(value, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  STUNT_CHECK_AS(ValueError, used == value.size() && parsed >= min && parsed <= max,
                 "environment variable ", name, "=", value, ": expected a whole number from ", min,
                 " to ", max, " (torchrun sets it; so can you, for every process)");
  return static_cast<int>(parsed);
}

/// Runs `fn` on `tensors` packed into flat buffers of one dtype, then unpacks the results.
/// A lone contiguous tensor goes as it is.
void in_buckets(const std::vector<at::Tensor>& tensors,
                const std::function<void(at::Tensor&)>& fn) {
  std::map<at::ScalarType, std::vector<at::Tensor>> by_type;
  for (const at::Tensor& t : tensors) {
    STUNT_CHECK_AS(ValueError, t.defined() && t.device().is_cpu(),
                   "data-parallel collectives take defined CPU tensors");
    by_type[t.scalar_type()].push_back(t);
  }
  auto flush = [&](std::vector<at::Tensor>& bucket) {
    if (bucket.empty()) return;
    if (bucket.size() == 1 && bucket.front().is_contiguous()) {
      fn(bucket.front());
    } else {
      std::vector<at::Tensor> flat_parts;
      for (const at::Tensor& t : bucket) flat_parts.push_back(t.reshape({-1}));
      at::Tensor flat = at::cat(flat_parts);
      fn(flat);
      int64_t offset = 0;
      for (at::Tensor& t : bucket) {
        t.copy_(flat.narrow(0, offset, t.numel()).view(t.sizes()));
        offset += t.numel();
      }
    }
    bucket.clear();
  };
  for (auto& [type, group] : by_type) {
    std::vector<at::Tensor> bucket;
    int64_t bytes = 0;
    for (const at::Tensor& t : group) {
      const int64_t size = t.numel() * static_cast<int64_t>(t.element_size());
      if (!bucket.empty() && bytes + size > kBucketBytes) {
        flush(bucket);
        bytes = 0;
      }
      bucket.push_back(t);
      bytes += size;
    }
    flush(bucket);
  }
}

}  // namespace

std::optional<DistributedEnvironment> distributed_environment() {
  const std::optional<std::string> world = variable("WORLD_SIZE");
  if (!world) return std::nullopt;
  DistributedEnvironment env;
  env.world_size = integer_variable("WORLD_SIZE", *world, 1, 1 << 16);
  const std::optional<std::string> rank = variable("RANK");
  STUNT_CHECK_AS(ValueError, rank.has_value() || env.world_size == 1,
                 "environment variable WORLD_SIZE=", *world,
                 " is set but RANK is not; launch with torchrun, or set RANK (0 to ",
                 env.world_size - 1, ") for every process");
  if (rank) env.rank = integer_variable("RANK", *rank, 0, env.world_size - 1);
  if (auto local = variable("LOCAL_RANK")) {
    env.local_rank = integer_variable("LOCAL_RANK", *local, 0, env.world_size - 1);
  }
  env.launcher_serves_store = variable("TORCHELASTIC_USE_AGENT_STORE") == "True";
  if (auto addr = variable("MASTER_ADDR")) env.master_addr = *addr;
  if (auto port = variable("MASTER_PORT")) {
    env.master_port = integer_variable("MASTER_PORT", *port, 1, 65535);
  }
  return env;
}

struct ProcessGroup::Impl {
  DistributedEnvironment env;
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<c10d::ProcessGroupGloo> group;

  [[noreturn]] void fail(const char* what, const std::string& reason) const {
    throw IoError(str("rank ", env.rank, " of ", env.world_size, ": the ", what,
                      " across ranks failed (another rank stopped, or timed out after ",
                      env.timeout.count(), " s): ", reason));
  }

  /// Runs a collective; c10d's and Gloo's failures (a rank gone, a timeout) become one IoError.
  template <typename Fn>
  void collective(const char* what, Fn&& fn) {
    try {
      fn()->wait();
    } catch (const c10::Error& e) {
      fail(what, e.what_without_backtrace());
    } catch (const std::exception& e) {  // Gloo's own exceptions
      fail(what, e.what());
    }
  }
};

ProcessGroup::ProcessGroup(const DistributedEnvironment& environment)
    : impl_(std::make_unique<Impl>()) {
  Impl& p = *impl_;
  p.env = environment;
  STUNT_CHECK_AS(ValueError,
                 p.env.world_size >= 1 && p.env.rank >= 0 && p.env.rank < p.env.world_size, "rank ",
                 p.env.rank, " is outside a world of ", p.env.world_size, " processes");
  const auto timeout = std::chrono::duration_cast<std::chrono::milliseconds>(p.env.timeout);
  try {
    c10d::TCPStoreOptions store_options;
    store_options.port = static_cast<uint16_t>(p.env.master_port);
    store_options.isServer = p.env.rank == 0 && !p.env.launcher_serves_store;
    store_options.numWorkers = p.env.world_size;
    store_options.waitWorkers = true;
    store_options.timeout =
        std::chrono::duration_cast<std::chrono::milliseconds>(p.env.join_timeout);
    p.store = c10::make_intrusive<c10d::TCPStore>(p.env.master_addr, store_options);
    auto options = c10d::ProcessGroupGloo::Options::create(timeout);
    // Ranks talk over the interface that reaches the rendezvous address.
    options->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname(p.env.master_addr));
    p.group =
        c10::make_intrusive<c10d::ProcessGroupGloo>(p.store, p.env.rank, p.env.world_size, options);
  } catch (const c10::Error& e) {
    throw IoError(str("rank ", p.env.rank, " of ", p.env.world_size,
                      ": cannot join the process group at ", p.env.master_addr, ":",
                      p.env.master_port,
                      " (MASTER_ADDR, MASTER_PORT): ", e.what_without_backtrace(),
                      "; check that every rank was started and the "
                      "port is free"));
  }
  log::info("data-parallel rank ", p.env.rank, " of ", p.env.world_size, " joined (Gloo, ",
            p.env.master_addr, ":", p.env.master_port, ")");
}

ProcessGroup::~ProcessGroup() = default;

int ProcessGroup::rank() const { return impl_->env.rank; }

int ProcessGroup::world_size() const { return impl_->env.world_size; }

void ProcessGroup::sum(const std::vector<at::Tensor>& tensors) {
  in_buckets(tensors, [this](at::Tensor& flat) {
    impl_->collective("sum", [&] {
      std::vector<at::Tensor> one{flat};
      return impl_->group->allreduce(one);
    });
  });
}

void ProcessGroup::average(const std::vector<at::Tensor>& tensors) {
  for (const at::Tensor& t : tensors) {
    STUNT_CHECK_AS(ValueError, at::isFloatingType(t.scalar_type()),
                   "averaging across ranks takes floating-point tensors, not ", t.scalar_type());
  }
  sum(tensors);
  const double world = static_cast<double>(world_size());
  for (const at::Tensor& t : tensors) t.div_(world);
}

void ProcessGroup::broadcast(const std::vector<at::Tensor>& tensors, int root) {
  in_buckets(tensors, [this, root](at::Tensor& flat) {
    impl_->collective("broadcast", [&] {
      std::vector<at::Tensor> one{flat};
      c10d::BroadcastOptions options;
      options.rootRank = root;
      return impl_->group->broadcast(one, options);
    });
  });
}

std::vector<at::Tensor> ProcessGroup::all_gather(const at::Tensor& tensor) {
  std::vector<at::Tensor> input{tensor.contiguous()};
  std::vector<std::vector<at::Tensor>> output(1);
  for (int r = 0; r < world_size(); ++r) output[0].push_back(at::empty_like(input[0]));
  impl_->collective("gather", [&] { return impl_->group->allgather(output, input); });
  return output[0];
}

}  // namespace stunt::train
