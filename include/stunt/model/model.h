#pragma once
/// The model interface every algorithm works on (DESIGN.md, "The model interface"): the
/// compressible layers, target matching as recipes name them, a forward pass run block by block
/// (so calibration can go one transformer layer at a time), input capture, and layer swapping.

#include <ATen/core/Tensor.h>
#include <c10/core/ScalarType.h>

#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace stunt::model {

enum class LayerKind { Linear, Conv, Embedding };

/// "Linear", "Conv", "Embedding".
const char* layer_kind_name(LayerKind kind);

struct Layer;

/// A replacement forward for a layer (masked, fake-quantized, packed). It receives the layer's
/// input and the layer itself, and returns what the layer outputs.
using LayerForward = std::function<at::Tensor(const at::Tensor& input, const Layer& layer)>;

/// A compressible layer. Its tensors belong to the model: algorithms change them in place
/// (`weight.copy_(...)`) or assign new tensors of the same shape.
struct Layer {
  /// Qualified name as the checkpoint spells it, e.g. "model.layers.0.self_attn.q_proj".
  std::string name;
  LayerKind kind = LayerKind::Linear;
  /// The module class a recipe target names: "Linear", "Conv1D" (GPT-2), "Conv2d", "Embedding".
  std::string class_name;
  /// Linear: [out_features, in_features], whatever the checkpoint's layout (GPT-2's Conv1D
  /// stores [in, out] and is transposed on load and back on save). Embedding: [vocab, hidden].
  at::Tensor weight;
  /// Undefined when the layer has none.
  at::Tensor bias;
  /// The block (transformer layer) that holds it; -1 for layers outside every block
  /// (embeddings, lm_head).
  int block = -1;
  /// When set, the model calls this instead of the plain layer.
  LayerForward forward;
  /// Set while an InputCapture covers this layer.
  bool capture = false;
  /// False when the model runs this layer without going through Model::call (a plain
  /// torch::nn::Linear inside a user's module): a replacement forward or an input capture would
  /// never run, so LayerSwap and InputCapture refuse it. Weight-only methods still apply.
  bool reachable = true;
  /// Checkpoint details, used when saving.
  bool stored_transposed = false;
  /// The layer whose weight this one shares in the checkpoint (lm_head ↔ embed_tokens), if any.
  std::string tied_to;
  /// Embedding: the row whose gradient stays zero in training (transformers' padding_idx);
  /// -1 for none. Inference ignores it.
  int64_t padding_idx = -1;

  int64_t out_features() const { return weight.size(0); }
  int64_t in_features() const { return weight.size(1); }
};

/// One batch of inputs. Token models use input_ids (int64 [batch, seq]) with an optional
/// attention_mask (1 = token, 0 = padding); encoder-decoder models also take decoder_input_ids.
struct Batch {
  at::Tensor input_ids;
  at::Tensor attention_mask;
  at::Tensor decoder_input_ids;
  /// TorchScript models (ScriptModel): the positional arguments of the module's forward, in
  /// order. When empty, ScriptModel passes input_ids (and attention_mask, if set) instead.
  std::vector<at::Tensor> inputs;
};

/// One block's self-attention, kept for attention distillation (Model::set_keep_attentions).
struct AttentionRecord {
  /// softmax(q·kᵀ·scale + mask) before dropout, [batch, heads, queries, keys].
  at::Tensor probabilities;
  /// The values the probabilities weigh, [batch, heads, keys, head_dim]: shared key/value heads
  /// (grouped-query attention) repeated for each query head.
  at::Tensor values;
};

struct Output {
  /// [batch, seq, vocab] for language models; undefined for encoders without a head.
  at::Tensor logits;
  /// The last hidden state (after the final norm), [batch, seq, hidden].
  at::Tensor hidden;
  /// The hidden state after each block, in num_blocks() order ([batch, seq, hidden] each, before
  /// any final norm), when Model::set_keep_block_outputs is on; empty otherwise.
  std::vector<at::Tensor> block_outputs;
  /// Each block's self-attention, in num_blocks() order, when Model::set_keep_attentions is on;
  /// empty otherwise.
  std::vector<AttentionRecord> attentions;
};

/// What flows from one block to the next during a block-by-block forward: the hidden state and
/// whatever the architecture needs beside it (masks, rotary tables, position bias, encoder output).
struct BlockState {
  at::Tensor hidden;
  std::map<std::string, at::Tensor> context;
};

class Model {
 public:
  virtual ~Model() = default;
  Model() = default;
  Model(const Model&) = delete;
  Model& operator=(const Model&) = delete;

  /// "bert", "llama", "gpt2", "t5", ...
  virtual std::string architecture() const = 0;

  /// Every compressible layer, in forward order.
  std::vector<Layer*> layers() const;
  /// The layer called `name`; throws ValueError naming similar layers when there is none.
  Layer& layer(const std::string& name) const;
  /// The layers of block `index`.
  std::vector<Layer*> block_layers(int index) const;

  /// The layers a recipe's targets select, minus those its ignore list names. A target or ignore
  /// entry is a class name ("Linear"), an exact layer name, or "re:<regex>" matched from the start
  /// of the name as Python's re.match does (compressed-tensors' rule). "Linear" also selects
  /// GPT-2's Conv1D layers, which are linear layers stored transposed.
  std::vector<Layer*> match(const std::vector<std::string>& targets,
                            const std::vector<std::string>& ignore = {}) const;

  /// The whole forward pass: embed, every block, head. Runs without autograd.
  Output forward(const Batch& batch);

  /// The same forward pass with autograd recorded, for training. Stunt's fused inference
  /// kernels, which have no backward, stand aside while grad mode is on.
  Output forward_with_grad(const Batch& batch);

  /// Training mode turns dropout on, at the rates the model's config gives (transformers'
  /// model.train()); models start in inference mode, as from_pretrained leaves them. Dropout
  /// draws from ATen's default CPU generator.
  void set_training(bool training) { training_ = training; }
  bool training() const { return training_; }

  /// Whether forward() and forward_with_grad() return every block's output
  /// (Output::block_outputs, as transformers' output_hidden_states): hidden-state distillation
  /// reads them. Off by default, since holding them costs a hidden state per block.
  void set_keep_block_outputs(bool keep) { keep_block_outputs_ = keep; }
  bool keep_block_outputs() const { return keep_block_outputs_; }

  /// Whether forward() and forward_with_grad() return every block's self-attention
  /// probabilities and values (Output::attentions, as transformers' output_attentions):
  /// attention distillation reads them. Attention then runs as explicit products instead of the
  /// fused kernel, which keeps no probabilities. NotImplementedError from the forward for models
  /// whose blocks Stunt does not run itself (TorchScript modules).
  void set_keep_attentions(bool keep) { keep_attentions_ = keep; }
  bool keep_attentions() const { return keep_attentions_; }

  /// Readies the model for training: every floating layer weight and bias and every floating
  /// non-layer tensor (norms, position tables) becomes a leaf that requires grad and owns its
  /// memory (a weight memory-mapped from its checkpoint is copied in place first, so that every
  /// holder of the tensor sees the copy and the optimizer never writes into the file's pages).
  /// Returns them by checkpoint name; a weight tied to another layer's is listed once, under
  /// the partner's name. Calling it again returns the same tensors.
  std::vector<std::pair<std::string, at::Tensor>> prepare_training();

  /// Block-by-block forward, for sequential calibration: `embed` prepares the state, then
  /// `run_block(i)` for i in [0, num_blocks()) in order, then `head`. An algorithm may change the
  /// weights of block i between capturing its inputs and running it for the next block.
  virtual int num_blocks() const = 0;
  virtual BlockState embed(const Batch& batch) = 0;
  virtual void run_block(int index, BlockState& state) = 0;
  virtual Output head(BlockState& state) = 0;

  /// Runs one part of block `index` on `input`, for methods that score a change by a module's
  /// output (AWQ): `name` is the module's path inside the block ("self_attn", "mlp"); `state`
  /// carries the block's context (masks, rotary tables) from run_block's input. Architectures
  /// that do not expose their parts throw NotImplementedError.
  virtual at::Tensor run_submodule(int index, const std::string& name, const at::Tensor& input,
                                   const BlockState& state);

  /// Calls a layer: its replacement forward if one is set, the plain layer otherwise, after
  /// handing the input to the active capture. Architectures call every layer through this.
  at::Tensor call(const Layer& layer, const at::Tensor& input) const;

  /// Every tensor as the checkpoint names and lays it out (the state dict to save).
  virtual std::vector<std::pair<std::string, at::Tensor>> state_dict() const;

  /// The dtype `tensor` (a checkpoint name) is stored in, which save() writes; float32 when the
  /// model does not know.
  virtual c10::ScalarType stored_dtype(const std::string& tensor) const { return c10::kFloat; }

  /// A non-layer tensor (a norm weight) by checkpoint name, or nullptr. Algorithms may change it
  /// in place (SmoothQuant folds scales into norms).
  at::Tensor* find_tensor(const std::string& name);
  /// The checkpoint names of every non-layer tensor, sorted.
  std::vector<std::string> tensor_names() const;

  /// Writes the model into `folder` (created if needed), each file atomically. Callers that
  /// replace a whole output folder stage it with AtomicDirectory.
  virtual void save(const std::filesystem::path& folder) const = 0;

 protected:
  /// Adds a layer; the reference stays valid for the model's lifetime.
  Layer& add_layer(Layer layer);
  /// Adds a non-layer tensor (a norm weight, a buffer) kept under its checkpoint name.
  at::Tensor& add_tensor(const std::string& name, at::Tensor tensor);
  const std::map<std::string, at::Tensor>& tensors() const { return tensors_; }
  /// Whether a layer tied to `embedding` (the head) still shares its weight tensor.
  bool weight_shared_with_head(const Layer& embedding) const;
  /// x with dropout at rate `p` in training mode; x itself in inference mode.
  at::Tensor dropout(const at::Tensor& x, double p) const;
  /// The attention-probability dropout rate to pass to attention(): `p` in training mode, 0
  /// otherwise.
  double attention_dropout(double p) const { return training_ ? p : 0.0; }
  /// Hands `input` to the active capture when it covers `layer`. For adapters that cannot call
  /// their layers through call() (ScriptModel's instrumented graph).
  void deliver_capture(const Layer& layer, const at::Tensor& input) const;

 private:
  friend class InputCapture;
  std::vector<std::unique_ptr<Layer>> layers_;
  std::map<std::string, Layer*> layers_by_name_;
  std::map<std::string, at::Tensor> tensors_;
  std::function<void(const Layer&, const at::Tensor&)> capture_;
  /// embed, every block, head; the blocks' outputs kept when asked.
  Output forward_blocks(const Batch& batch);

  bool training_ = false;
  bool keep_block_outputs_ = false;
  bool keep_attentions_ = false;
};

/// While alive, hands the input of each chosen layer to `receive` on every forward pass (full or
/// block by block). One capture at a time per model.
class InputCapture {
 public:
  using Receiver = std::function<void(const Layer& layer, const at::Tensor& input)>;
  InputCapture(Model& model, const std::vector<Layer*>& layers, Receiver receive);
  ~InputCapture();
  InputCapture(const InputCapture&) = delete;
  InputCapture& operator=(const InputCapture&) = delete;

 private:
  Model& model_;
  std::vector<Layer*> layers_;
};

/// Swaps a layer's forward for the lifetime of the guard (or until release()).
class LayerSwap {
 public:
  LayerSwap(Layer& layer, LayerForward forward);
  ~LayerSwap();
  LayerSwap(const LayerSwap&) = delete;
  LayerSwap& operator=(const LayerSwap&) = delete;
  /// Keeps the replacement in place after the guard ends.
  void release() { released_ = true; }

 private:
  Layer& layer_;
  LayerForward previous_;
  bool released_ = false;
};

/// While alive, this thread's forwards may use Stunt's calibration kernels, which round
/// differently from ATen in the last bits: causal attention that scores only the keys each
/// query sees (kernels/causal_attention.h), single-pass RMSNorm and gated activations
/// (kernels/rms_norm.h, kernels/gated_silu.h), and linear layers through oneDNN rather than MKL
/// (kernels/onednn_linear.h). Calibration passes use them for speed.
/// Inference keeps ATen's arithmetic, the arithmetic transformers runs: with dynamically
/// quantized activations, a last-bit difference can move a value across a rounding step.
class CalibrationKernelScope {
 public:
  CalibrationKernelScope();
  ~CalibrationKernelScope();
  CalibrationKernelScope(const CalibrationKernelScope&) = delete;
  CalibrationKernelScope& operator=(const CalibrationKernelScope&) = delete;
  static bool active();

 private:
  bool previous_;
};

}  // namespace stunt::model
