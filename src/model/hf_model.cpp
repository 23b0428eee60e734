#include "stunt/model/hf_model.h"

#include <ATen/ATen.h>

#include <fstream>
#include <sstream>

#include "detail/architectures.h"
#include "stunt/core/atomic_file.h"
#include "stunt/core/error.h"
#include "stunt/core/strings.h"
#include "stunt/io/hf_folder.h"
#include "stunt/io/memory_checkpoint.h"
#include "stunt/io/safetensors.h"

namespace stunt::model {

namespace {

struct Architecture {
  const char* model_type;
  detail::ArchitectureLoader load;
};

// One entry per model_type transformers writes; Mistral, Qwen2 and SmolLM (model_type "llama")
// share the Llama implementation.
constexpr Architecture kArchitectures[] = {
    {"bert", detail::load_bert},   {"llama", detail::load_llama}, {"mistral", detail::load_llama},
    {"qwen2", detail::load_llama}, {"gpt2", detail::load_gpt2},   {"t5", detail::load_t5},
};

}  // namespace

std::vector<std::string> supported_model_types() {
  std::vector<std::string> out;
  for (const Architecture& a : kArchitectures) out.emplace_back(a.model_type);
  return out;
}

std::unique_ptr<HfModel> load_hf_model(const std::filesystem::path& folder,
                                       std::unique_ptr<io::Checkpoint> weights,
                                       const LoadOptions& options) {
  STUNT_CHECK_AS(IoError, std::filesystem::is_directory(folder), folder.string(),
                 " is not a folder; a Hugging Face model is a folder with config.json and weights");
  HfConfig config = HfConfig::from_folder(folder);
  const std::string type = config.model_type();
  detail::ArchitectureLoader load = detail::find_architecture(type);
  if (load != nullptr) {
    if (!weights) {
      const nlohmann::json& q = config.json().value("quantization_config", nlohmann::json());
      STUNT_CHECK_AS(NotImplementedError, !q.is_object(), config.source(),
                     ": the checkpoint is quantized (quantization_config, quant_method ",
                     q.value("quant_method", std::string("?")),
                     "); open it with stunt::quant::load_model, which decompresses it and "
                     "quantizes activations as the checkpoint says (the CLI does)");
      weights = io::Checkpoint::open(folder);
    }
    return load(std::move(config), folder, std::move(weights), options.dtype.value_or(at::kFloat));
  }
  throw NotImplementedError(
      str(config.source(), ": model_type \"", printable(type),
          "\" is not supported natively; supported: ", join(supported_model_types(), ", "),
          ". Other models can be compressed as TorchScript (model.pt)"));
}

std::unique_ptr<HfModel> load_hf_model(const std::filesystem::path& folder,
                                       const LoadOptions& options) {
  return load_hf_model(folder, nullptr, options);
}

namespace detail {

ArchitectureLoader find_architecture(const std::string& model_type) {
  for (const Architecture& a : kArchitectures) {
    if (model_type == a.model_type) return a.load;
  }
  return nullptr;
}

}  // namespace detail

int64_t HfModel::decoder_start_token_id() const {
  throw NotImplementedError(str(architecture(), " is not an encoder-decoder model"));
}

void HfModel::start_decoding(const at::Tensor&, const at::Tensor&, KvCache&) {
  throw NotImplementedError(str(architecture(), " is not an encoder-decoder model"));
}

at::Tensor HfModel::decode_step(const at::Tensor&, const at::Tensor&, KvCache&, int64_t) {
  throw NotImplementedError(str("incremental decoding (generation) is not implemented for ",
                                architecture(), "; supported: llama, mistral, qwen2, gpt2, t5"));
}

c10::ScalarType HfModel::stored_dtype(const std::string& tensor) const {
  auto it = stored_dtypes_.find(tensor);
  return it == stored_dtypes_.end() ? at::kFloat : it->second;
}

std::vector<std::pair<std::string, at::Tensor>> HfModel::state_dict() const {
  std::vector<std::pair<std::string, at::Tensor>> out = Model::state_dict();
  for (auto& [name, tensor] : out) {
    if (at::isFloatingType(tensor.scalar_type())) tensor = tensor.to(stored_dtype(name));
  }
  return out;
}

std::unique_ptr<HfModel> HfModel::rebuilt(
    nlohmann::json config, std::vector<std::pair<std::string, at::Tensor>> tensors) const {
  const std::string type = config_.model_type();
  detail::ArchitectureLoader load = detail::find_architecture(type);
  STUNT_CHECK_AS(NotImplementedError, load != nullptr, "cannot rebuild a model of type ", type);
  c10::ScalarType dtype = at::kFloat;
  for (const Layer* layer : layers()) dtype = layer->weight.scalar_type();
  std::unique_ptr<HfModel> model = load(HfConfig(std::move(config), config_.source()), source_,
                                        io::memory_checkpoint(std::move(tensors), source_), dtype);
  model->extra_files_ = extra_files_;
  return model;
}

void HfModel::save(const std::filesystem::path& folder) const {
  save_as(folder, state_dict(), nlohmann::json::object());
}

void HfModel::save_as(const std::filesystem::path& folder,
                      const std::vector<std::pair<std::string, at::Tensor>>& tensors,
                      const nlohmann::json& config_entries) const {
  std::filesystem::create_directories(folder);
  nlohmann::json config = config_.json();
  // A model loaded from a quantized checkpoint holds dense weights now: only the caller's
  // quantization_config may describe what is written.
  config.erase("quantization_config");
  for (auto it = config_entries.begin(); it != config_entries.end(); ++it) {
    config[it.key()] = it.value();
  }
  // A head that was tied but now differs from the embedding is saved and untied.
  for (const Layer* layer : layers()) {
    if (!layer->tied_to.empty() && !this->layer(layer->tied_to).weight.is_same(layer->weight)) {
      config["tie_word_embeddings"] = false;
    }
  }
  if (std::filesystem::is_directory(source_)) io::copy_hf_passthrough_files(source_, folder);
  for (const auto& [name, content] : extra_files_) write_file_atomic(folder / name, content);
  io::save_safetensors_sharded(folder, tensors);
  write_file_atomic(folder / "config.json", config.dump(2) + "\n");
}

namespace detail {

void check_token_batch(const at::Tensor& input_ids, const at::Tensor& attention_mask,
                       int64_t vocab_size, int64_t max_positions, const char* what) {
  STUNT_CHECK(input_ids.defined(), what, ": the batch has no input_ids");
  STUNT_CHECK(input_ids.dim() == 2 && input_ids.size(0) > 0 && input_ids.size(1) > 0, what,
              ": input_ids must be [batch, seq] with both > 0, got ", input_ids.sizes());
  STUNT_CHECK(input_ids.scalar_type() == at::kLong, what, ": input_ids must be int64, got ",
              input_ids.scalar_type());
  STUNT_CHECK(input_ids.size(1) <= max_positions, what, ": sequence length ", input_ids.size(1),
              " exceeds the model's max_position_embeddings ", max_positions);
  const int64_t low = input_ids.min().item<int64_t>();
  const int64_t high = input_ids.max().item<int64_t>();
  STUNT_CHECK(low >= 0 && high < vocab_size, what, ": token ids must lie in [0, ", vocab_size,
              "), found ", low < 0 ? low : high,
              "; was the text tokenized with this model's tokenizer?");
  if (attention_mask.defined()) {
    STUNT_CHECK(attention_mask.sizes() == input_ids.sizes(), what, ": attention_mask is ",
                attention_mask.sizes(), " but input_ids is ", input_ids.sizes());
  }
}

}  // namespace detail

SentencePooling SentencePooling::from_folder(const std::filesystem::path& folder) {
  SentencePooling pooling;
  auto read_json = [](const std::filesystem::path& path) -> nlohmann::json {
    std::ifstream in(path, std::ios::binary);
    if (!in.good()) return nullptr;
    std::stringstream buffer;
    buffer << in.rdbuf();
    try {
      return nlohmann::json::parse(buffer.str());
    } catch (const nlohmann::json::exception& e) {
      throw FormatError(str(path.string(), ": not valid JSON (", e.what(), ")"));
    }
  };
  const nlohmann::json modules = read_json(folder / "modules.json");
  std::filesystem::path pooling_config = folder / "1_Pooling" / "config.json";
  if (modules.is_array()) {
    for (const nlohmann::json& module : modules) {
      if (!module.is_object() || !module.contains("type") || !module["type"].is_string()) continue;
      const std::string type = module["type"].get<std::string>();
      const std::string path = module.value("path", std::string());
      if (type == "sentence_transformers.models.Normalize") pooling.normalize = true;
      if (type == "sentence_transformers.models.Pooling")
        pooling_config = folder / path / "config.json";
    }
  }
  const nlohmann::json config = read_json(pooling_config);
  if (config.is_object()) {
    int modes = 0;
    if (config.value("pooling_mode_mean_tokens", false)) pooling.mode = Mode::Mean, ++modes;
    if (config.value("pooling_mode_cls_token", false)) pooling.mode = Mode::Cls, ++modes;
    if (config.value("pooling_mode_max_tokens", false)) pooling.mode = Mode::Max, ++modes;
    STUNT_CHECK_AS(NotImplementedError,
                   modes <= 1 && !config.value("pooling_mode_mean_sqrt_len_tokens", false) &&
                       !config.value("pooling_mode_weightedmean_tokens", false) &&
                       !config.value("pooling_mode_lasttoken", false),
                   pooling_config.string(),
                   ": only one of pooling_mode_mean_tokens, pooling_mode_cls_token and "
                   "pooling_mode_max_tokens is supported");
  }
  return pooling;
}

at::Tensor SentencePooling::operator()(const at::Tensor& hidden,
                                       const at::Tensor& attention_mask) const {
  at::Tensor keep = attention_mask.defined()
                        ? attention_mask.to(hidden.scalar_type()).unsqueeze(-1)
                        : at::ones({hidden.size(0), hidden.size(1), 1}, hidden.options());
  at::Tensor pooled;
  switch (mode) {
    case Mode::Mean:
      pooled = (hidden * keep).sum(1) / keep.sum(1).clamp_min(1e-9);
      break;
    case Mode::Cls:
      pooled = hidden.select(1, 0);
      break;
    case Mode::Max:
      pooled = hidden.masked_fill(keep == 0, -1e9).amax(1);
      break;
  }
  // torch.nn.functional.normalize: x / max(||x||, 1e-12).
  return normalize ? pooled / pooled.norm(2, {-1}, /*keepdim=*/true).clamp_min(1e-12) : pooled;
}

}  // namespace stunt::model
