// Llama-family decoders: Llama (1-3.x), Mistral, Qwen2, SmolLM. Pre-norm blocks with RMSNorm,
// rotary positions, grouped-query attention and a gated (SwiGLU) MLP.
#include <ATen/ATen.h>
#include <c10/core/GradMode.h>

#include <cmath>
#include <tuple>

#include "detail/architectures.h"
#include "detail/nn_ops.h"
#include "detail/weight_loader.h"
#include "stunt/core/error.h"

namespace stunt::model::detail {
namespace {

class Llama final : public HfModel {
 public:
  Llama(HfConfig config, const std::filesystem::path& source,
        std::unique_ptr<io::Checkpoint> weights, c10::ScalarType dtype)
      : HfModel(std::move(config), source), rotary_(config_, head_dim_of(config_)) {
    const HfConfig& c = config_;
    type_ = c.model_type();
    hidden_ = c.integer("hidden_size");
    heads_ = c.integer("num_attention_heads");
    kv_heads_ = c.integer("num_key_value_heads", heads_);
    head_dim_ = head_dim_of(c);
    const int64_t layers = c.integer("num_hidden_layers");
    const int64_t intermediate = c.integer("intermediate_size");
    vocab_ = c.integer("vocab_size");
    max_positions_ = c.integer("max_position_embeddings", int64_t{1} << 40);
    eps_ = c.number("rms_norm_eps", 1e-6);
    attention_dropout_ = c.probability("attention_dropout", 0.0);  // Llama has no other dropout
    activation_ = c.string("hidden_act", "silu");
    if (!is_known_activation(activation_)) c.fail("hidden_act", "is not a supported activation");
    if (heads_ % kv_heads_ != 0) {
      c.fail("num_key_value_heads", str("does not divide num_attention_heads ", heads_));
    }
    if (c.integer("pretraining_tp", 1) != 1) c.fail("pretraining_tp", "is not supported; use 1");
    // Mistral attends within a sliding window in every layer. Qwen2's use_sliding_window
    // windows only the layers from max_window_layers on, which Stunt does not implement.
    if (type_ == "qwen2" && c.boolean("use_sliding_window", false)) {
      c.fail("use_sliding_window",
             "is not supported for qwen2 (per-layer windows); set it to false");
    }
    if (type_ == "mistral") {
      sliding_window_ = c.optional_integer("sliding_window", 1).value_or(0);
    }
    const bool qkv_bias = type_ == "qwen2" || c.boolean("attention_bias", false);
    const bool o_bias = type_ != "qwen2" && c.boolean("attention_bias", false);
    const bool mlp_bias = c.boolean("mlp_bias", false);

    WeightLoader w(std::move(weights), dtype);
    const std::string p = w.find_prefix({"model.", ""}, "embed_tokens.weight");
    embed_ = &add_layer(embedding_layer(p + "embed_tokens",
                                        w.take(p + "embed_tokens.weight", {vocab_, hidden_}),
                                        // -1 (old conversions) means none, as any id outside
                                        // the vocabulary does.
                                        c.optional_integer("pad_token_id", INT64_MIN)));
    auto linear = [&](const std::string& name, int64_t out, int64_t in, bool bias,
                      int block) -> Layer* {
      return &add_layer(linear_layer(name, w.take(name + ".weight", {out, in}),
                                     bias ? w.take(name + ".bias", {out}) : at::Tensor(), block));
    };
    auto norm = [&](const std::string& name) { return add_tensor(name, w.take(name, {hidden_})); };
    for (int i = 0; i < layers; ++i) {
      const std::string b = str(p, "layers.", i, ".");
      Block block;
      block.input_norm = norm(b + "input_layernorm.weight");
      block.q = linear(b + "self_attn.q_proj", heads_ * head_dim_, hidden_, qkv_bias, i);
      block.k = linear(b + "self_attn.k_proj", kv_heads_ * head_dim_, hidden_, qkv_bias, i);
      block.v = linear(b + "self_attn.v_proj", kv_heads_ * head_dim_, hidden_, qkv_bias, i);
      block.o = linear(b + "self_attn.o_proj", hidden_, heads_ * head_dim_, o_bias, i);
      block.post_norm = norm(b + "post_attention_layernorm.weight");
      block.gate = linear(b + "mlp.gate_proj", intermediate, hidden_, mlp_bias, i);
      block.up = linear(b + "mlp.up_proj", intermediate, hidden_, mlp_bias, i);
      block.down = linear(b + "mlp.down_proj", hidden_, intermediate, mlp_bias, i);
      blocks_.push_back(block);
    }
    final_norm_ = norm(p + "norm.weight");
    // transformers ties lm_head to the embeddings when tie_word_embeddings is set, whatever the
    // file holds; otherwise lm_head.weight is required.
    if (c.boolean("tie_word_embeddings", false)) {
      lm_head_ = &add_layer(tied_head("lm_head", *embed_));
      w.ignore_unused([](const std::string& name) { return name == "lm_head.weight"; });
    } else {
      lm_head_ = linear("lm_head", vocab_, hidden_, false, -1);
    }
    // Older checkpoints saved the rotary frequencies as a buffer.
    w.ignore_unused([](const std::string& name) {
      return name.size() > 22 && name.compare(name.size() - 22, 22, "rotary_emb.inv_freq") == 0;
    });
    w.finish(type_);
    stored_dtypes_ = w.stored_dtypes();
  }

  std::string architecture() const override { return type_; }
  int num_blocks() const override { return static_cast<int>(blocks_.size()); }

  BlockState embed(const Batch& batch) override {
    check_token_batch(batch.input_ids, batch.attention_mask, vocab_, max_positions_, "llama");
    const int64_t seq = batch.input_ids.size(1);
    BlockState state;
    state.hidden = call(*embed_, batch.input_ids);
    auto [cos, sin] = rotary_.tables(at::arange(seq).unsqueeze(0), state.hidden.scalar_type());
    state.context["cos"] = cos;
    state.context["sin"] = sin;
    state.context["bias"] = attention_bias(batch.attention_mask, seq, seq, /*causal=*/true,
                                           state.hidden.scalar_type(), sliding_window_);
    return state;
  }

  void run_block(int index, BlockState& state) override {
    state.hidden = block_forward(blocks_.at(index), state.hidden, state.context.at("cos"),
                                 state.context.at("sin"), state.context.at("bias"), nullptr);
  }

  bool supports_decoding() const override { return true; }

  at::Tensor decode_step(const at::Tensor& new_ids, const at::Tensor& new_mask, KvCache& cache,
                         int64_t keep_last) override {
    c10::NoGradGuard no_grad;
    check_token_batch(new_ids, new_mask, vocab_, max_positions_, "llama");
    const int64_t rows = new_ids.size(0);
    const int64_t q_len = new_ids.size(1);
    const int64_t k_len = cache.length + q_len;
    if (cache.keys.empty()) {
      cache.keys.resize(blocks_.size());
      cache.values.resize(blocks_.size());
    }
    const at::Tensor keep = extend_cache_mask(cache, new_mask, rows, q_len);
    at::Tensor x = call(*embed_, new_ids);
    const auto dtype = x.scalar_type();
    at::Tensor positions = positions_from_mask(keep).narrow(1, cache.length, q_len);
    auto [cos, sin] = rotary_.tables(positions, dtype);
    at::Tensor bias = cached_attention_bias(keep, q_len, k_len, dtype, sliding_window_);
    for (size_t i = 0; i < blocks_.size(); ++i) {
      KvSlot slot{&cache.keys[i], &cache.values[i]};
      x = block_forward(blocks_[i], x, cos, sin, bias, &slot);
    }
    cache.length = k_len;
    return call(*lm_head_, rms_norm(last_positions(x, keep_last), final_norm_, eps_));
  }

  Output head(BlockState& state) override {
    at::Tensor hidden = rms_norm(state.hidden, final_norm_, eps_);
    return {call(*lm_head_, hidden), hidden};
  }

 private:
  static int64_t head_dim_of(const HfConfig& c) {
    const int64_t hidden = c.integer("hidden_size");
    const int64_t heads = c.integer("num_attention_heads");
    if (c.has("head_dim")) return c.integer("head_dim");
    if (hidden % heads != 0) {
      c.fail("num_attention_heads", str("does not divide hidden_size ", hidden));
    }
    return hidden / heads;
  }

  struct Block {
    at::Tensor input_norm, post_norm;
    Layer *q, *k, *v, *o, *gate, *up, *down;
  };
  struct KvSlot {
    at::Tensor* keys;
    at::Tensor* values;
  };

  // One decoder layer; with `slot`, the new keys and values are appended to the cached ones
  // and the queries attend to all of them (causal only among several new queries).
  at::Tensor block_forward(const Block& b, at::Tensor x, const at::Tensor& cos,
                           const at::Tensor& sin, const at::Tensor& bias, KvSlot* slot) const {
    x = x + attention_forward(b, rms_norm(x, b.input_norm, eps_), cos, sin, bias, slot);
    return x + mlp_forward(b, rms_norm(x, b.post_norm, eps_));
  }

  // self_attn: normalized hidden states in, o_proj's output out.
  at::Tensor attention_forward(const Block& b, const at::Tensor& h, const at::Tensor& cos,
                               const at::Tensor& sin, const at::Tensor& bias, KvSlot* slot) const {
    at::Tensor q = split_heads(call(*b.q, h), heads_, head_dim_);
    at::Tensor k = split_heads(call(*b.k, h), kv_heads_, head_dim_);
    at::Tensor v = split_heads(call(*b.v, h), kv_heads_, head_dim_);
    q = Rotary::apply(q, cos, sin);
    k = Rotary::apply(k, cos, sin);
    if (slot != nullptr) std::tie(k, v) = append_kv(*slot->keys, *slot->values, k, v);
    const bool causal = q.size(2) > 1;
    at::Tensor attended =
        attention(q, k, v, bias, causal, 1.0 / std::sqrt(static_cast<double>(head_dim_)),
                  attention_dropout(attention_dropout_));
    return call(*b.o, merge_heads(attended));
  }

  // mlp: normalized hidden states in, down_proj's output out.
  at::Tensor mlp_forward(const Block& b, const at::Tensor& h) const {
    const at::Tensor gate = call(*b.gate, h);
    return call(*b.down, gated_activation(activation_, gate, call(*b.up, h)));
  }

 public:
  at::Tensor run_submodule(int index, const std::string& name, const at::Tensor& input,
                           const BlockState& state) override {
    c10::NoGradGuard no_grad;
    const Block& b = blocks_.at(index);
    if (name == "self_attn") {
      return attention_forward(b, input, state.context.at("cos"), state.context.at("sin"),
                               state.context.at("bias"), nullptr);
    }
    if (name == "mlp") return mlp_forward(b, input);
    return Model::run_submodule(index, name, input, state);
  }

 private:
  std::string type_;
  int64_t hidden_, heads_, kv_heads_, head_dim_, vocab_, max_positions_;
  int64_t sliding_window_ = 0;
  double eps_;
  double attention_dropout_ = 0.0;
  std::string activation_;
  Rotary rotary_;
  Layer* embed_;
  Layer* lm_head_;
  at::Tensor final_norm_;
  std::vector<Block> blocks_;
};

}  // namespace

std::unique_ptr<HfModel> load_llama(HfConfig config, const std::filesystem::path& source,
                                    std::unique_ptr<io::Checkpoint> weights,
                                    c10::ScalarType dtype) {
  return std::make_unique<Llama>(std::move(config), source, std::move(weights), dtype);
}

// What structured pruning can cut: blocks, query and key/value heads, FFN channels.
void llama_layout(StructureLayout& layout, const HfConfig& c, const NameSet& tensors) {
  const std::string p = prefix_of(tensors, {"model.", ""}, "embed_tokens.weight");
  BlockStack stack{"", p + "layers.", "num_hidden_layers", c.integer("num_hidden_layers"), 0};
  layout.stacks.push_back(stack);
  layout.heads = c.integer("num_attention_heads");
  layout.kv_heads = c.integer("num_key_value_heads", layout.heads);
  layout.head_dim =
      c.has("head_dim") ? c.integer("head_dim") : c.integer("hidden_size") / layout.heads;
  layout.heads_key = "num_attention_heads";
  layout.kv_heads_key = "num_key_value_heads";
  layout.head_dim_key = "head_dim";
  layout.position_bias.push_back("");
  layout.ffn_width = c.integer("intermediate_size");
  layout.ffn_width_key = "intermediate_size";
  layout.causal_lm = true;
  const std::vector<SlicedTensor> attention = {
      {"q_proj.weight", 0, false}, {"q_proj.bias", 0, false},  {"k_proj.weight", 0, true},
      {"k_proj.bias", 0, true},    {"v_proj.weight", 0, true}, {"v_proj.bias", 0, true},
      {"o_proj.weight", 1, false}};
  const std::vector<SlicedTensor> ffn = {{"gate_proj.weight", 0, false},
                                         {"gate_proj.bias", 0, false},
                                         {"up_proj.weight", 0, false},
                                         {"up_proj.bias", 0, false},
                                         {"down_proj.weight", 1, false}};
  for (int i = 0; i < stack.count; ++i) {
    const std::string a = str(stack.prefix, i, ".self_attn.");
    layout.attention.push_back({a, i, a + "o_proj", -1, present(tensors, a, attention)});
    const std::string f = str(stack.prefix, i, ".mlp.");
    layout.ffns.push_back({f, i, f + "down_proj", present(tensors, f, ffn)});
  }
}

// llm-compressor's default smoothing mappings for the Llama family.
ArchitectureTraits llama_traits() {
  ArchitectureTraits traits;
  traits.smoothquant_mappings = {
      {"re:.*input_layernorm", {"re:.*q_proj", "re:.*k_proj", "re:.*v_proj"}},
      {"re:.*post_attention_layernorm", {"re:.*gate_proj", "re:.*up_proj"}}};
  traits.awq_mappings = {
      {"re:.*input_layernorm$", {"re:.*q_proj$", "re:.*k_proj$", "re:.*v_proj$"}},
      {"re:.*v_proj$", {"re:.*o_proj$"}},
      {"re:.*post_attention_layernorm$", {"re:.*gate_proj$", "re:.*up_proj$"}},
      {"re:.*up_proj$", {"re:.*down_proj$"}}};
  return traits;
}

}  // namespace stunt::model::detail
