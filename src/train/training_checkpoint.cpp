#include "detail/training_checkpoint.h"

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>
#include <torch/optim/adamw.h>
#include <torch/optim/sgd.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <sstream>

#include "stunt/core/atomic_file.h"
#include "stunt/core/error.h"
#include "stunt/io/safetensors.h"

namespace stunt::train::detail {
namespace {

namespace fs = std::filesystem;
using Json = nlohmann::ordered_json;

constexpr const char* kFormat = "stunt-training-checkpoint";
constexpr int kVersion = 1;

std::string folder_name(int64_t step) {
  char name[32];
  std::snprintf(name, sizeof name, "step-%08lld", static_cast<long long>(step));
  return name;
}

/// The step of a folder called step-NNNNNNNN (eight digits or more), or -1.
int64_t parse_step(const std::string& name) {
  if (name.size() < 13 || name.rfind("step-", 0) != 0) return -1;
  const std::string digits = name.substr(5);
  if (!std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    return -1;
  }
  return std::stoll(digits);
}

Json identity_json(const CheckpointIdentity& id) {
  return {{"run", id.run},
          {"data", id.data},
          {"steps_per_epoch", id.steps_per_epoch},
          {"total_steps", id.total_steps},
          {"optimizer", id.optimizer},
          {"world_size", id.world_size}};
}

at::Tensor step_tensor(int64_t step) { return at::full({1}, step, at::kLong); }

/// The optimizer's state of every parameter, by "<parameter>/<field>".
std::vector<io::NamedTensor> optimizer_tensors(
    torch::optim::Optimizer& optimizer,
    const std::vector<std::pair<std::string, at::Tensor>>& parameters) {
  std::vector<io::NamedTensor> out;
  auto& state = optimizer.state();
  for (const auto& [name, p] : parameters) {
    auto it = state.find(p.unsafeGetTensorImpl());
    if (it == state.end()) continue;
    if (auto* adamw = dynamic_cast<torch::optim::AdamWParamState*>(it->second.get())) {
      out.emplace_back(name + "/step", step_tensor(adamw->step()));
      out.emplace_back(name + "/exp_avg", adamw->exp_avg());
      out.emplace_back(name + "/exp_avg_sq", adamw->exp_avg_sq());
      if (adamw->max_exp_avg_sq().defined()) {
        out.emplace_back(name + "/max_exp_avg_sq", adamw->max_exp_avg_sq());
      }
    } else if (auto* sgd = dynamic_cast<torch::optim::SGDParamState*>(it->second.get())) {
      if (sgd->momentum_buffer().defined()) {
        out.emplace_back(name + "/momentum_buffer", sgd->momentum_buffer());
      }
    } else {
      throw InternalError("training checkpoint: unsupported optimizer state for " + name);
    }
  }
  return out;
}

void restore_optimizer(torch::optim::Optimizer& optimizer,
                       const std::vector<std::pair<std::string, at::Tensor>>& parameters,
                       const io::SafetensorsFile& file) {
  auto& state = optimizer.state();
  state.clear();
  const bool adamw = dynamic_cast<torch::optim::AdamW*>(&optimizer) != nullptr;
  for (const auto& [name, p] : parameters) {
    if (adamw) {
      if (!file.contains(name + "/step")) continue;
      auto s = std::make_unique<torch::optim::AdamWParamState>();
      s->step(file.tensor(name + "/step").item<int64_t>());
      s->exp_avg(file.tensor(name + "/exp_avg").clone());
      s->exp_avg_sq(file.tensor(name + "/exp_avg_sq").clone());
      if (file.contains(name + "/max_exp_avg_sq")) {
        s->max_exp_avg_sq(file.tensor(name + "/max_exp_avg_sq").clone());
      }
      state[p.unsafeGetTensorImpl()] = std::move(s);
    } else if (file.contains(name + "/momentum_buffer")) {
      auto s = std::make_unique<torch::optim::SGDParamState>();
      s->momentum_buffer(file.tensor(name + "/momentum_buffer").clone());
      state[p.unsafeGetTensorImpl()] = std::move(s);
    }
  }
}

std::string read_text(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  STUNT_CHECK_AS(IoError, in.good(), path.string(), ": cannot read");
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

}  // namespace

std::vector<std::pair<int64_t, fs::path>> list_training_checkpoints(const fs::path& dir) {
  std::vector<std::pair<int64_t, fs::path>> found;
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return found;
  for (const auto& entry : fs::directory_iterator(dir)) {
    const int64_t step = parse_step(entry.path().filename().string());
    if (step >= 0 && fs::exists(entry.path() / "trainer.json")) {
      found.emplace_back(step, entry.path());
    }
  }
  std::sort(found.begin(), found.end());
  return found;
}

void write_training_checkpoint(const fs::path& dir, const CheckpointContents& contents,
                               int64_t keep) {
  STUNT_ASSERT(contents.parameters != nullptr && contents.optimizer != nullptr);
  AtomicDirectory folder(dir / folder_name(contents.step), {.overwrite = true});
  io::save_safetensors(folder.staging() / "model.safetensors", *contents.parameters);
  io::save_safetensors(folder.staging() / "optimizer.safetensors",
                       optimizer_tensors(*contents.optimizer, *contents.parameters));
  std::vector<io::NamedTensor> callback_tensors;
  Json callbacks = Json::object();
  for (const auto& [name, state] : contents.callbacks) {
    for (const auto& [key, tensor] : state.tensors) {
      callback_tensors.emplace_back(name + "/" + key, tensor);
    }
    callbacks[name] = state.json;
  }
  io::save_safetensors(folder.staging() / "callbacks.safetensors", callback_tensors);
  const Json trainer = {{"format", kFormat},
                        {"version", kVersion},
                        {"step", contents.step},
                        {"identity", identity_json(contents.identity)},
                        {"callbacks", callbacks}};
  // trainer.json last: a folder is complete when it holds it (and renamed into place at all).
  write_file_atomic(folder.staging() / "trainer.json", trainer.dump(2) + "\n");
  folder.commit();

  auto all = list_training_checkpoints(dir);
  for (size_t i = 0; keep > 0 && i + static_cast<size_t>(keep) < all.size(); ++i) {
    std::error_code ec;
    fs::remove_all(all[i].second, ec);
  }
}

std::optional<int64_t> read_training_checkpoint(
    const fs::path& dir, const CheckpointIdentity& expected,
    const std::vector<std::pair<std::string, at::Tensor>>& parameters,
    torch::optim::Optimizer& optimizer, std::map<std::string, CallbackState>& callbacks) {
  const auto all = list_training_checkpoints(dir);
  if (all.empty()) return std::nullopt;
  const fs::path& folder = all.back().second;
  const fs::path trainer_path = folder / "trainer.json";
  Json trainer;
  try {
    trainer = Json::parse(read_text(trainer_path));
  } catch (const Json::exception& e) {
    throw FormatError(str(trainer_path.string(), ": not valid JSON (", e.what(),
                          "); remove this checkpoint folder to resume from the one before"));
  }
  STUNT_CHECK_AS(FormatError,
                 trainer.value("format", "") == kFormat && trainer.value("version", 0) == kVersion,
                 trainer_path.string(), ": not a Stunt training checkpoint of version ", kVersion);
  const Json want = identity_json(expected);
  const Json& have = trainer.at("identity");
  for (const auto& [key, value] : want.items()) {
    STUNT_CHECK_AS(ValueError, have.contains(key) && have.at(key) == value, trainer_path.string(),
                   ": the checkpoint was written for another run (", key, " was ",
                   have.contains(key) ? have.at(key).dump() : std::string("missing"), ", now ",
                   value.dump(),
                   "). Resume only the run that wrote it, or start over with another "
                   "checkpoint folder");
  }

  const auto model_file = io::SafetensorsFile::open(folder / "model.safetensors");
  {
    c10::NoGradGuard no_grad;
    for (const auto& [name, p] : parameters) {
      STUNT_CHECK_AS(ValueError, model_file->contains(name),
                     (folder / "model.safetensors").string(), ": no tensor '", name,
                     "'; the checkpoint belongs to another model");
      const at::Tensor saved = model_file->tensor(name);
      STUNT_CHECK_AS(ValueError, saved.sizes() == p.sizes(),
                     (folder / "model.safetensors").string(), ": '", name, "' is ", saved.sizes(),
                     ", the model's is ", p.sizes(), "; the checkpoint belongs to another model");
      p.copy_(saved);
    }
  }
  restore_optimizer(optimizer, parameters,
                    *io::SafetensorsFile::open(folder / "optimizer.safetensors"));
  const auto callback_file = io::SafetensorsFile::open(folder / "callbacks.safetensors");
  for (const auto& [name, json] : trainer.at("callbacks").items()) {
    callbacks[name].json = json;
  }
  for (const auto& [name, tensor] : callback_file->tensors()) {
    // Callback names may hold '/' (recipe paths); the keys after the last one never do.
    const auto slash = name.rfind('/');
    STUNT_CHECK_AS(FormatError, slash != std::string::npos,
                   (folder / "callbacks.safetensors").string(), ": tensor '", name,
                   "' is not named <callback>/<tensor>");
    callbacks[name.substr(0, slash)].tensors[name.substr(slash + 1)] = tensor.clone();
  }
  return trainer.at("step").get<int64_t>();
}

}  // namespace stunt::train::detail
