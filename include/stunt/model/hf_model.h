#pragma once
/// Hugging Face models implemented natively on LibTorch: BERT-family encoders, Llama-family
/// decoders (Llama, Mistral, Qwen2, SmolLM), GPT-2 and T5, loaded from a Hugging Face folder
/// (config.json + safetensors, sharded or not, or pytorch_model.bin).

#include <ATen/core/Tensor.h>
#include <c10/core/ScalarType.h>

#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "stunt/io/checkpoint.h"
#include "stunt/model/hf_config.h"
#include "stunt/model/kv_cache.h"
#include "stunt/model/model.h"

namespace stunt::model {

struct LoadOptions {
  /// The dtype weights are converted to for computing. Unset: float32, the only dtype every
  /// CPU kernel handles well; set it to bfloat16/float16 to keep the checkpoint's precision.
  std::optional<c10::ScalarType> dtype;
};

/// A model loaded from a Hugging Face folder.
class HfModel : public Model {
 public:
  const HfConfig& config() const { return config_; }
  const std::filesystem::path& source() const { return source_; }
  /// The checkpoint dtype of each tensor, used to save in the same precision.
  c10::ScalarType stored_dtype(const std::string& tensor) const override;

  /// Writes config.json, model.safetensors (sharded above 5 GB as transformers does) and the
  /// source folder's tokenizer and sentence-transformers files.
  void save(const std::filesystem::path& folder) const override;
  /// save() with `tensors` written instead of state_dict() and `config_entries` merged into
  /// config.json (compressed weights and their quantization_config).
  void save_as(const std::filesystem::path& folder,
               const std::vector<std::pair<std::string, at::Tensor>>& tensors,
               const nlohmann::json& config_entries) const;

  std::vector<std::pair<std::string, at::Tensor>> state_dict() const override;

  /// A new model of the same architecture and source folder from `config` (config.json's
  /// content) and `tensors` (checkpoint names and layout, as state_dict() gives them): how
  /// structured pruning changes shapes. The loader checks every tensor against the config, so a
  /// surgery that leaves them inconsistent is refused here. Tensors keep their dtype on save.
  std::unique_ptr<HfModel> rebuilt(nlohmann::json config,
                                   std::vector<std::pair<std::string, at::Tensor>> tensors) const;

  /// Incremental decoding (generate.h). Whether this model implements decode_step.
  virtual bool supports_decoding() const { return false; }
  /// Whether decoding needs start_decoding first (T5).
  virtual bool is_encoder_decoder() const { return false; }
  /// Encoder-decoder models: the first decoder token.
  virtual int64_t decoder_start_token_id() const;
  /// Encoder-decoder models: runs the encoder on input_ids [rows, seq] (attention_mask
  /// [rows, seq] or undefined) and fills `cache` with each decoder block's cross-attention
  /// keys and values. Resets the cache.
  virtual void start_decoding(const at::Tensor& input_ids, const at::Tensor& attention_mask,
                              KvCache& cache);
  /// Runs the (decoder) blocks on new_ids [rows, new] after the positions held in `cache`, with
  /// the same layer calls (Model::call) and math as forward(), appends their keys and values,
  /// and returns the logits of the new positions, [rows, new, vocab]: of the last `keep_last`
  /// of them when keep_last > 0 (a prompt's prefill needs one row, and the vocabulary-wide head
  /// on every position would cost a fifth of a small model's prefill). new_mask [rows, new]
  /// (1 = token, 0 = padding; undefined = all tokens) extends the cached mask; causal LMs count
  /// positions from the mask, as transformers' generate does for left-padded prompts.
  virtual at::Tensor decode_step(const at::Tensor& new_ids, const at::Tensor& new_mask,
                                 KvCache& cache, int64_t keep_last);

 protected:
  HfModel(HfConfig config, std::filesystem::path source)
      : config_(std::move(config)), source_(std::move(source)) {}
  HfConfig config_;
  std::filesystem::path source_;
  std::map<std::string, c10::ScalarType> stored_dtypes_;

 public:
  /// Files save() writes beside the weights, by name (a tokenizer.json built for a model whose
  /// source is not a Hugging Face folder).
  void set_extra_file(const std::string& name, std::string content) {
    extra_files_[name] = std::move(content);
  }

 private:
  std::map<std::string, std::string> extra_files_;
};

/// The model_type values load_hf_model accepts.
std::vector<std::string> supported_model_types();

/// Loads a GGUF file (llama.cpp) of a Llama-family model: the metadata becomes a config.json,
/// tensors are dequantized (F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0), and the query/key
/// rows llama.cpp permutes for its rotary layout are put back in transformers' order. save()
/// writes a Hugging Face folder with a tokenizer.json built from the GGUF vocabulary.
std::unique_ptr<HfModel> load_gguf_model(const std::filesystem::path& file,
                                         const LoadOptions& options = {});

/// Loads the Hugging Face folder `folder`. An unsupported model_type is an error naming it and
/// the supported list; missing, extra or misshaped tensors are reported by name with shapes.
std::unique_ptr<HfModel> load_hf_model(const std::filesystem::path& folder,
                                       const LoadOptions& options = {});
/// Loads the folder's config.json with tensors from `weights` (a checkpoint that decompresses or
/// renames on the fly); null means the folder's own weights. Quantized folders (config.json
/// with quantization_config) are refused here: stunt::quant::load_model reads them.
std::unique_ptr<HfModel> load_hf_model(const std::filesystem::path& folder,
                                       std::unique_ptr<io::Checkpoint> weights,
                                       const LoadOptions& options);

/// Sentence-transformers pooling, read from the folder's modules.json and 1_Pooling/config.json:
/// mean (the default when the folder has no pooling config), CLS or max over the tokens the
/// attention mask keeps, then L2 normalization when the pipeline has a Normalize module.
struct SentencePooling {
  enum class Mode { Mean, Cls, Max } mode = Mode::Mean;
  bool normalize = false;

  static SentencePooling from_folder(const std::filesystem::path& folder);
  /// hidden: [batch, seq, dim]; attention_mask: [batch, seq] (undefined = all tokens).
  at::Tensor operator()(const at::Tensor& hidden, const at::Tensor& attention_mask) const;
};

}  // namespace stunt::model
