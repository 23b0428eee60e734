// Llama-family models from GGUF files: llama.cpp's metadata becomes a transformers config,
// its tensor names become transformers names, and its tensors are dequantized on demand.
#include <ATen/ATen.h>

#include <nlohmann/json.hpp>

#include "detail/architectures.h"
#include "stunt/core/error.h"
#include "stunt/core/logging.h"
#include "stunt/io/gguf.h"
#include "stunt/io/gguf_tokenizer.h"
#include "stunt/io/tensor_dtype.h"
#include "stunt/model/hf_model.h"

namespace stunt::model {

namespace {

// llama.cpp block tensor names → transformers names (model.layers.N.<name>).
constexpr std::pair<const char*, const char*> kBlockNames[] = {
    {"attn_norm", "input_layernorm"},    {"attn_q", "self_attn.q_proj"},
    {"attn_k", "self_attn.k_proj"},      {"attn_v", "self_attn.v_proj"},
    {"attn_output", "self_attn.o_proj"}, {"ffn_norm", "post_attention_layernorm"},
    {"ffn_gate", "mlp.gate_proj"},       {"ffn_up", "mlp.up_proj"},
    {"ffn_down", "mlp.down_proj"},
};

std::string transformers_name(const std::string& name) {
  if (name == "token_embd.weight") return "model.embed_tokens.weight";
  if (name == "output_norm.weight") return "model.norm.weight";
  if (name == "output.weight") return "lm_head.weight";
  if (name.rfind("blk.", 0) == 0) {
    const size_t dot = name.find('.', 4);
    if (dot != std::string::npos) {
      const std::string index = name.substr(4, dot - 4);
      const std::string rest = name.substr(dot + 1);
      for (const auto& [gguf, hf] : kBlockNames) {
        const std::string prefix = std::string(gguf) + ".";
        if (rest.rfind(prefix, 0) == 0) {
          return "model.layers." + index + "." + hf + "." + rest.substr(prefix.size());
        }
      }
    }
  }
  return name;  // left as is: the weight loader reports it as unexpected
}

// A GGUF file seen as a checkpoint with transformers names. llama.cpp's converter permutes the
// rows of q_proj and k_proj so that rotary pairs are adjacent; undo it per head.
class GgufCheckpoint final : public io::Checkpoint {
 public:
  GgufCheckpoint(std::shared_ptr<io::GgufFile> file, int64_t heads, int64_t kv_heads)
      : io::Checkpoint(file->path()), file_(std::move(file)), heads_(heads), kv_heads_(kv_heads) {
    for (const io::GgufTensorInfo& info : file_->tensors()) {
      io::TensorEntry entry;
      entry.name = transformers_name(info.name);
      entry.dtype = "F32";  // what load() returns
      entry.shape = info.shape;
      entry.numel = 1;
      for (int64_t d : info.shape) entry.numel *= d;
      entry.nbytes = info.nbytes;
      entry.file = file_->path();
      STUNT_CHECK_AS(FormatError, gguf_names_.emplace(entry.name, info.name).second,
                     path().string(), ": tensors ", gguf_names_[entry.name], " and ", info.name,
                     " both map to ", entry.name);
      entries_.push_back(std::move(entry));
    }
  }

  io::CheckpointFormat format() const override { return io::CheckpointFormat::Gguf; }
  const std::vector<io::TensorEntry>& entries() const override { return entries_; }

  at::Tensor load(const std::string& name) const override {
    auto it = gguf_names_.find(name);
    STUNT_CHECK(it != gguf_names_.end(), path().string(), ": no tensor named ", name);
    at::Tensor tensor = file_->dequantize(it->second);
    if (ends_with(name, "self_attn.q_proj.weight")) return unpermute(tensor, heads_);
    if (ends_with(name, "self_attn.k_proj.weight")) return unpermute(tensor, kv_heads_);
    return tensor;
  }

 private:
  static bool ends_with(const std::string& text, const std::string& suffix) {
    return text.size() >= suffix.size() &&
           text.compare(text.size() - suffix.size(), suffix.size(), suffix) == 0;
  }

  // Inverse of llama.cpp's permute: rows (head, pair, 2) → (head, 2, pair).
  static at::Tensor unpermute(const at::Tensor& weight, int64_t heads) {
    const int64_t rows = weight.size(0);
    STUNT_CHECK_AS(FormatError, rows % (2 * heads) == 0, "GGUF attention weight has ", rows,
                   " rows, not a multiple of 2 x ", heads, " heads");
    return weight.reshape({heads, rows / heads / 2, 2, weight.size(1)})
        .transpose(1, 2)
        .reshape({rows, weight.size(1)})
        .contiguous();
  }

  std::shared_ptr<io::GgufFile> file_;
  int64_t heads_, kv_heads_;
  std::vector<io::TensorEntry> entries_;
  std::map<std::string, std::string> gguf_names_;
};

// transformers' config for a GGUF "llama" model.
nlohmann::json llama_config(const io::GgufFile& file) {
  const std::string source = file.path().string();
  auto integer = [&](const std::string& key) {
    const io::GgufValue* value = file.find(key);
    STUNT_CHECK_AS(FormatError, value != nullptr, source, ": metadata ", key,
                   " is missing; a llama GGUF needs it");
    return file.integer(key);
  };
  auto number = [&](const std::string& key, double fallback) {
    const io::GgufValue* value = file.find(key);
    return value == nullptr ? fallback : value->number();
  };
  const io::GgufValue* scaling = file.find("llama.rope.scaling.type");
  const std::string scaling_type = scaling ? file.string("llama.rope.scaling.type") : "none";
  STUNT_CHECK_AS(NotImplementedError, scaling_type == "none", source,
                 ": llama.rope.scaling.type \"", scaling_type,
                 "\" is not supported for GGUF models yet");
  STUNT_CHECK_AS(NotImplementedError, file.find_tensor("rope_freqs.weight") == nullptr, source,
                 ": rope_freqs.weight (Llama 3.1 frequency factors) is not supported for GGUF "
                 "models yet");
  const int64_t heads = integer("llama.attention.head_count");
  const io::GgufValue* kv = file.find("llama.attention.head_count_kv");
  const io::GgufValue* tokens = file.find("tokenizer.ggml.tokens");
  int64_t vocab = tokens != nullptr ? static_cast<int64_t>(tokens->array().size()) : 0;
  if (file.find("llama.vocab_size") != nullptr) vocab = file.integer("llama.vocab_size");
  nlohmann::json config = {
      {"architectures", {"LlamaForCausalLM"}},
      {"model_type", "llama"},
      {"hidden_size", integer("llama.embedding_length")},
      {"intermediate_size", integer("llama.feed_forward_length")},
      {"num_hidden_layers", integer("llama.block_count")},
      {"num_attention_heads", heads},
      {"num_key_value_heads",
       kv != nullptr ? file.integer("llama.attention.head_count_kv") : heads},
      {"max_position_embeddings", integer("llama.context_length")},
      {"rms_norm_eps", number("llama.attention.layer_norm_rms_epsilon", 1e-5)},
      {"rope_theta", number("llama.rope.freq_base", 10000.0)},
      {"vocab_size", vocab},
      {"hidden_act", "silu"},
      {"tie_word_embeddings", file.find_tensor("output.weight") == nullptr},
      {"torch_dtype", "float32"},
  };
  for (const auto& [role, gguf_role] :
       {std::pair<const char*, const char*>{"bos", "bos"}, {"eos", "eos"}, {"pad", "padding"}}) {
    const std::string key = str("tokenizer.ggml.", gguf_role, "_token_id");
    if (file.find(key) != nullptr) config[str(role, "_token_id")] = file.integer(key);
  }
  return config;
}

}  // namespace

std::unique_ptr<HfModel> load_gguf_model(const std::filesystem::path& path,
                                         const LoadOptions& options) {
  auto file = io::GgufFile::open(path);
  const io::GgufValue* arch = file->find("general.architecture");
  const std::string architecture = arch != nullptr ? file->string("general.architecture") : "";
  STUNT_CHECK_AS(NotImplementedError, architecture == "llama", path.string(),
                 ": GGUF general.architecture \"", printable(architecture),
                 "\" is not supported; supported: llama (Llama, Mistral-style, SmolLM)");
  HfConfig config(llama_config(*file), path.string() + " (GGUF metadata)");
  const int64_t heads = config.integer("num_attention_heads");
  const int64_t kv_heads = config.integer("num_key_value_heads");
  auto weights = std::make_unique<GgufCheckpoint>(file, heads, kv_heads);
  std::unique_ptr<HfModel> model = detail::find_architecture("llama")(
      std::move(config), path, std::move(weights), options.dtype.value_or(at::kFloat));
  // The weights do not depend on the vocabulary: a model whose tokenizer Stunt cannot rebuild
  // still loads, runs on token ids and converts (without tokenizer files).
  if (file->find("tokenizer.ggml.model") != nullptr) {
    try {
      model->set_extra_file("tokenizer.json", io::gguf_tokenizer_json(*file));
      model->set_extra_file("tokenizer_config.json", io::gguf_tokenizer_config_json(*file));
    } catch (const NotImplementedError& e) {
      log::warn(e.what(), "; the model loads without a tokenizer (pass --tokenizer)");
    }
  }
  return model;
}

}  // namespace stunt::model
