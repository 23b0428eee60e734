// GPT-2: pre-norm blocks with LayerNorm, learned absolute positions, fused qkv. Its linear layers
// are Conv1D modules that store weights as [in, out]; Stunt transposes them to [out, in] on load
// (the layout every algorithm expects) and back on save.
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

bool ends_with(const std::string& text, const std::string& suffix) {
  return text.size() >= suffix.size() &&
         text.compare(text.size() - suffix.size(), suffix.size(), suffix) == 0;
}

class Gpt2 final : public HfModel {
 public:
  Gpt2(HfConfig config, const std::filesystem::path& source,
       std::unique_ptr<io::Checkpoint> weights, c10::ScalarType dtype)
      : HfModel(std::move(config), source) {
    const HfConfig& c = config_;
    hidden_ = c.integer("n_embd");
    heads_ = c.integer("n_head");
    const int64_t layers = c.integer("n_layer");
    vocab_ = c.integer("vocab_size");
    max_positions_ = c.integer("n_positions");
    const int64_t inner = c.optional_integer("n_inner", 1).value_or(4 * hidden_);
    eps_ = c.number("layer_norm_epsilon", 1e-5);
    // transformers' GPT2Config defaults.
    embedding_dropout_ = c.probability("embd_pdrop", 0.1);
    attention_dropout_ = c.probability("attn_pdrop", 0.1);
    residual_dropout_ = c.probability("resid_pdrop", 0.1);
    activation_ = c.string("activation_function", "gelu_new");
    if (!is_known_activation(activation_)) {
      c.fail("activation_function", "is not a supported activation");
    }
    if (hidden_ % heads_ != 0) c.fail("n_head", str("does not divide n_embd ", hidden_));
    scale_ = c.boolean("scale_attn_weights", true)
                 ? 1.0 / std::sqrt(static_cast<double>(hidden_ / heads_))
                 : 1.0;
    scale_by_layer_ = c.boolean("scale_attn_by_inverse_layer_idx", false);

    WeightLoader w(std::move(weights), dtype);
    const std::string p = w.find_prefix({"transformer.", ""}, "wte.weight");
    wte_ = &add_layer(embedding_layer(p + "wte", w.take(p + "wte.weight", {vocab_, hidden_})));
    wpe_ = add_tensor(p + "wpe.weight", w.take(p + "wpe.weight", {max_positions_, hidden_}));
    auto norm = [&](const std::string& name) -> Norm {
      return {add_tensor(name + ".weight", w.take(name + ".weight", {hidden_})),
              add_tensor(name + ".bias", w.take(name + ".bias", {hidden_}))};
    };
    auto conv1d = [&](const std::string& name, int64_t in, int64_t out, int block) -> Layer* {
      Layer layer = linear_layer(name, w.take(name + ".weight", {in, out}).t().contiguous(),
                                 w.take(name + ".bias", {out}), block, "Conv1D");
      layer.stored_transposed = true;
      return &add_layer(std::move(layer));
    };
    for (int i = 0; i < layers; ++i) {
      const std::string b = str(p, "h.", i, ".");
      Block block;
      block.ln_1 = norm(b + "ln_1");
      block.c_attn = conv1d(b + "attn.c_attn", hidden_, 3 * hidden_, i);
      block.attn_proj = conv1d(b + "attn.c_proj", hidden_, hidden_, i);
      block.ln_2 = norm(b + "ln_2");
      block.c_fc = conv1d(b + "mlp.c_fc", hidden_, inner, i);
      block.mlp_proj = conv1d(b + "mlp.c_proj", inner, hidden_, i);
      blocks_.push_back(block);
    }
    ln_f_ = norm(p + "ln_f");
    // GPT2LMHeadModel always ties lm_head to wte.
    lm_head_ = &add_layer(tied_head("lm_head", *wte_));
    // The causal-mask buffers older releases saved, and the tied head.
    w.ignore_unused([](const std::string& name) {
      return ends_with(name, ".attn.bias") || ends_with(name, ".attn.masked_bias") ||
             name == "lm_head.weight";
    });
    w.finish("gpt2");
    stored_dtypes_ = w.stored_dtypes();
  }

  std::string architecture() const override { return "gpt2"; }
  int num_blocks() const override { return static_cast<int>(blocks_.size()); }

  BlockState embed(const Batch& batch) override {
    check_token_batch(batch.input_ids, batch.attention_mask, vocab_, max_positions_, "gpt2");
    const int64_t seq = batch.input_ids.size(1);
    BlockState state;
    state.hidden = dropout(call(*wte_, batch.input_ids) + wpe_.narrow(0, 0, seq).unsqueeze(0),
                           embedding_dropout_);
    state.context["bias"] =
        attention_bias(batch.attention_mask, seq, seq, true, state.hidden.scalar_type());
    return state;
  }

  void run_block(int index, BlockState& state) override {
    state.hidden = block_forward(index, state.hidden, state.context.at("bias"), nullptr, nullptr);
  }

  bool supports_decoding() const override { return true; }

  at::Tensor decode_step(const at::Tensor& new_ids, const at::Tensor& new_mask, KvCache& cache,
                         int64_t keep_last) override {
    c10::NoGradGuard no_grad;
    check_token_batch(new_ids, new_mask, vocab_, max_positions_, "gpt2");
    const int64_t rows = new_ids.size(0);
    const int64_t q_len = new_ids.size(1);
    const int64_t k_len = cache.length + q_len;
    STUNT_CHECK(k_len <= max_positions_, "gpt2: decoding position ", k_len - 1,
                " is past n_positions = ", max_positions_, "; generate fewer tokens");
    if (cache.keys.empty()) {
      cache.keys.resize(blocks_.size());
      cache.values.resize(blocks_.size());
    }
    const at::Tensor keep = extend_cache_mask(cache, new_mask, rows, q_len);
    at::Tensor positions = positions_from_mask(keep).narrow(1, cache.length, q_len);
    at::Tensor x = call(*wte_, new_ids) +
                   wpe_.index_select(0, positions.reshape({-1})).view({rows, q_len, hidden_});
    at::Tensor bias = cached_attention_bias(keep, q_len, k_len, x.scalar_type());
    for (size_t i = 0; i < blocks_.size(); ++i) {
      x = block_forward(static_cast<int>(i), x, bias, &cache.keys[i], &cache.values[i]);
    }
    cache.length = k_len;
    x = last_positions(x, keep_last);
    return call(*lm_head_, at::layer_norm(x, {hidden_}, ln_f_.first, ln_f_.second, eps_));
  }

  Output head(BlockState& state) override {
    at::Tensor hidden = at::layer_norm(state.hidden, {hidden_}, ln_f_.first, ln_f_.second, eps_);
    return {call(*lm_head_, hidden), hidden};
  }

 private:
  using Norm = std::pair<at::Tensor, at::Tensor>;
  struct Block {
    Norm ln_1, ln_2;
    Layer *c_attn, *attn_proj, *c_fc, *mlp_proj;
  };
  // One block; with a cache (cached_k / cached_v non-null), the new keys and values are
  // appended to the cached ones and the queries attend to all of them.
  at::Tensor block_forward(int index, at::Tensor x, const at::Tensor& bias, at::Tensor* cached_k,
                           at::Tensor* cached_v) const {
    const Block& b = blocks_.at(index);
    const int64_t head_dim = hidden_ / heads_;
    at::Tensor h = at::layer_norm(x, {hidden_}, b.ln_1.first, b.ln_1.second, eps_);
    std::vector<at::Tensor> qkv = call(*b.c_attn, h).split(hidden_, -1);
    at::Tensor q = split_heads(qkv[0], heads_, head_dim);
    at::Tensor k = split_heads(qkv[1], heads_, head_dim);
    at::Tensor v = split_heads(qkv[2], heads_, head_dim);
    if (cached_k != nullptr) std::tie(k, v) = append_kv(*cached_k, *cached_v, k, v);
    const double scale = scale_by_layer_ ? scale_ / (index + 1) : scale_;
    const bool causal = q.size(2) > 1;
    at::Tensor attended =
        attention(q, k, v, bias, causal, scale, attention_dropout(attention_dropout_));
    x = x + dropout(call(*b.attn_proj, merge_heads(attended)), residual_dropout_);
    h = at::layer_norm(x, {hidden_}, b.ln_2.first, b.ln_2.second, eps_);
    return x +
           dropout(call(*b.mlp_proj, activation(activation_, call(*b.c_fc, h))), residual_dropout_);
  }

  int64_t hidden_, heads_, vocab_, max_positions_;
  double eps_, scale_;
  double embedding_dropout_ = 0.0, attention_dropout_ = 0.0, residual_dropout_ = 0.0;
  bool scale_by_layer_;
  std::string activation_;
  Layer* wte_;
  Layer* lm_head_;
  at::Tensor wpe_;
  Norm ln_f_;
  std::vector<Block> blocks_;
};

}  // namespace

std::unique_ptr<HfModel> load_gpt2(HfConfig config, const std::filesystem::path& source,
                                   std::unique_ptr<io::Checkpoint> weights, c10::ScalarType dtype) {
  return std::make_unique<Gpt2>(std::move(config), source, std::move(weights), dtype);
}

// What structured pruning can cut: blocks and FFN channels (not heads, see heads_refusal).
void gpt2_layout(StructureLayout& layout, const HfConfig& c, const NameSet& tensors) {
  const std::string p = prefix_of(tensors, {"transformer.", ""}, "wte.weight");
  BlockStack stack{"", p + "h.", "n_layer", c.integer("n_layer"), 0};
  layout.stacks.push_back(stack);
  layout.position_bias.push_back("");
  layout.heads_refusal =
      "transformers derives GPT-2's head size from n_embd / n_head, so a GPT-2 with fewer heads "
      "would not load; prune its FFN channels or whole layers instead";
  layout.ffn_width = c.optional_integer("n_inner").value_or(4 * c.integer("n_embd"));
  layout.ffn_width_key = "n_inner";
  layout.causal_lm = true;
  // Conv1D stores [in, out]: c_fc's channels are its columns, c_proj's its rows.
  const std::vector<SlicedTensor> ffn = {
      {"c_fc.weight", 1, false}, {"c_fc.bias", 0, false}, {"c_proj.weight", 0, false}};
  for (int i = 0; i < stack.count; ++i) {
    const std::string f = str(stack.prefix, i, ".mlp.");
    layout.ffns.push_back({f, i, f + "c_proj", present(tensors, f, ffn)});
  }
}

}  // namespace stunt::model::detail
