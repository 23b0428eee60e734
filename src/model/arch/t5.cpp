// T5 encoder-decoder (T5ForConditionalGeneration; original T5 and v1.1 / flan with gated-gelu).
// RMS layer norms without bias, unscaled attention with a learned relative-position bias that
// the first block of each stack owns and every block reuses.
//
// Blocks for block-by-block runs: the encoder's blocks come first, then the decoder's; the
// first decoder block also applies the encoder's final norm and embeds the decoder input.
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

// Mesh TensorFlow's bucketing of relative positions (memory - query), as transformers does it.
at::Tensor relative_position_buckets(const at::Tensor& relative, bool bidirectional,
                                     int64_t num_buckets, int64_t max_distance) {
  at::Tensor buckets = at::zeros_like(relative);
  at::Tensor distance = relative;
  if (bidirectional) {
    num_buckets /= 2;
    buckets = buckets + (relative > 0).to(at::kLong) * num_buckets;
    distance = relative.abs();
  } else {
    distance = -at::minimum(relative, at::zeros_like(relative));
  }
  const int64_t max_exact = num_buckets / 2;
  at::Tensor is_small = distance < max_exact;
  at::Tensor large = max_exact + (at::log(distance.to(at::kFloat) / max_exact) /
                                  std::log(static_cast<double>(max_distance) / max_exact) *
                                  static_cast<double>(num_buckets - max_exact))
                                     .to(at::kLong);
  large = at::minimum(large, at::full_like(large, num_buckets - 1));
  return buckets + at::where(is_small, distance, large);
}

class T5 final : public HfModel {
 public:
  T5(HfConfig config, const std::filesystem::path& source, std::unique_ptr<io::Checkpoint> weights,
     c10::ScalarType dtype)
      : HfModel(std::move(config), source) {
    const HfConfig& c = config_;
    d_model_ = c.integer("d_model");
    heads_ = c.integer("num_heads");
    d_kv_ = c.integer("d_kv");
    const int64_t d_ff = c.integer("d_ff");
    vocab_ = c.integer("vocab_size");
    const int64_t encoder_layers = c.integer("num_layers");
    const int64_t decoder_layers = c.integer("num_decoder_layers", encoder_layers);
    // Bucketing divides by log(max_distance / max_exact), max_exact = buckets / 4 (encoder).
    buckets_ = c.integer("relative_attention_num_buckets", 32, 4);
    max_distance_ = c.integer("relative_attention_max_distance", 128, 1);
    if (max_distance_ <= buckets_ / 2) {
      c.fail("relative_attention_max_distance",
             str("must exceed relative_attention_num_buckets / 2 = ", buckets_ / 2));
    }
    eps_ = c.number("layer_norm_epsilon", 1e-6);
    dropout_ = c.probability("dropout_rate", 0.1);  // transformers' T5Config default
    decoder_start_ = c.integer("decoder_start_token_id", c.integer("pad_token_id", 0, 0), 0);
    const std::string ff = c.string("feed_forward_proj", "relu");
    gated_ = ff.rfind("gated-", 0) == 0;
    activation_ = gated_ ? ff.substr(6) : ff;
    if (ff == "gated-gelu") activation_ = "gelu_new";
    if (!is_known_activation(activation_) || (!gated_ && ff.find('-') != std::string::npos)) {
      c.fail("feed_forward_proj", "is not supported; expected e.g. \"relu\" or \"gated-gelu\"");
    }
    // transformers 5 writes scale_decoder_outputs; before, tie_word_embeddings meant the same.
    scale_outputs_ = c.has("scale_decoder_outputs") ? c.boolean("scale_decoder_outputs", true)
                                                    : c.boolean("tie_word_embeddings", true);
    const int64_t inner = heads_ * d_kv_;

    WeightLoader w(std::move(weights), dtype);
    shared_ = &add_layer(embedding_layer("shared", w.take("shared.weight", {vocab_, d_model_})));
    auto linear = [&](const std::string& name, int64_t out, int64_t in, int block) -> Layer* {
      return &add_layer(linear_layer(name, w.take(name + ".weight", {out, in}), {}, block));
    };
    auto norm = [&](const std::string& name) { return add_tensor(name, w.take(name, {d_model_})); };
    auto attention_layer = [&](const std::string& name, int block) -> Attention {
      return {
          linear(name + ".q", inner, d_model_, block), linear(name + ".k", inner, d_model_, block),
          linear(name + ".v", inner, d_model_, block), linear(name + ".o", d_model_, inner, block)};
    };
    auto feed_forward = [&](const std::string& name, int block) -> FeedForward {
      FeedForward f;
      if (gated_) {
        f.wi = linear(name + ".wi_0", d_ff, d_model_, block);
        f.wi_gate = linear(name + ".wi_1", d_ff, d_model_, block);
      } else {
        f.wi = linear(name + ".wi", d_ff, d_model_, block);
      }
      f.wo = linear(name + ".wo", d_model_, d_ff, block);
      return f;
    };
    for (int i = 0; i < encoder_layers; ++i) {
      const std::string b = str("encoder.block.", i, ".layer.");
      Block block;
      block.self_norm = norm(b + "0.layer_norm.weight");
      block.self_attention = attention_layer(b + "0.SelfAttention", i);
      block.ff_norm = norm(b + "1.layer_norm.weight");
      block.ff = feed_forward(b + "1.DenseReluDense", i);
      blocks_.push_back(block);
    }
    encoder_bias_ =
        add_tensor("encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight",
                   w.take("encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight",
                          {buckets_, heads_}));
    encoder_norm_ = norm("encoder.final_layer_norm.weight");
    for (int i = 0; i < decoder_layers; ++i) {
      const int index = static_cast<int>(encoder_layers) + i;
      const std::string b = str("decoder.block.", i, ".layer.");
      Block block;
      block.self_norm = norm(b + "0.layer_norm.weight");
      block.self_attention = attention_layer(b + "0.SelfAttention", index);
      block.cross_norm = norm(b + "1.layer_norm.weight");
      block.cross_attention = attention_layer(b + "1.EncDecAttention", index);
      block.ff_norm = norm(b + "2.layer_norm.weight");
      block.ff = feed_forward(b + "2.DenseReluDense", index);
      blocks_.push_back(block);
    }
    encoder_blocks_ = static_cast<int>(encoder_layers);
    if (decoder_layers > 0) {
      decoder_bias_ =
          add_tensor("decoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight",
                     w.take("decoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight",
                            {buckets_, heads_}));
    }
    decoder_norm_ = norm("decoder.final_layer_norm.weight");
    if (w.contains("lm_head.weight")) {
      lm_head_ = linear("lm_head", vocab_, d_model_, -1);
    } else {
      lm_head_ = &add_layer(tied_head("lm_head", *shared_));
    }
    // Copies of the shared embedding that some writers save.
    w.ignore_unused([](const std::string& name) {
      return name == "encoder.embed_tokens.weight" || name == "decoder.embed_tokens.weight";
    });
    w.finish("t5");
    stored_dtypes_ = w.stored_dtypes();
  }

  std::string architecture() const override { return "t5"; }
  int num_blocks() const override { return static_cast<int>(blocks_.size()); }

  BlockState embed(const Batch& batch) override {
    check_token_batch(batch.input_ids, batch.attention_mask, vocab_, int64_t{1} << 40, "t5");
    const int64_t seq = batch.input_ids.size(1);
    at::Tensor decoder_ids = batch.decoder_input_ids;
    if (!decoder_ids.defined()) {
      // Without targets, the decoder reads the input shifted right (a copy task), which gives
      // calibration realistic decoder activations.
      decoder_ids = at::cat({at::full({batch.input_ids.size(0), 1}, decoder_start_, at::kLong),
                             batch.input_ids.narrow(1, 0, seq - 1)},
                            1);
    }
    check_token_batch(decoder_ids, {}, vocab_, int64_t{1} << 40, "t5 decoder");
    STUNT_CHECK(decoder_ids.size(0) == batch.input_ids.size(0), "decoder_input_ids has batch size ",
                decoder_ids.size(0), " but input_ids has ", batch.input_ids.size(0));
    BlockState state;
    encoder_inputs(batch.input_ids, batch.attention_mask, state);
    state.context["decoder_input_ids"] = decoder_ids;
    return state;
  }

  void run_block(int index, BlockState& state) override {
    const Block& b = blocks_.at(index);
    if (index < encoder_blocks_) {
      at::Tensor x = state.hidden;
      x = x + dropout(attend(b.self_attention, rms_norm(x, b.self_norm, eps_), {},
                             state.context.at("encoder_bias")),
                      dropout_);
      state.hidden = x + dropout(feed_forward(b.ff, rms_norm(x, b.ff_norm, eps_)), dropout_);
      return;
    }
    if (index == encoder_blocks_) start_decoder(state);
    at::Tensor x = state.hidden;
    x = x + dropout(attend(b.self_attention, rms_norm(x, b.self_norm, eps_), {},
                           state.context.at("decoder_bias")),
                    dropout_);
    x = x + dropout(attend(b.cross_attention, rms_norm(x, b.cross_norm, eps_),
                           state.context.at("encoder_hidden"), state.context.at("cross_bias")),
                    dropout_);
    state.hidden = x + dropout(feed_forward(b.ff, rms_norm(x, b.ff_norm, eps_)), dropout_);
  }

  bool supports_decoding() const override { return true; }
  bool is_encoder_decoder() const override { return true; }
  int64_t decoder_start_token_id() const override { return decoder_start_; }

  void start_decoding(const at::Tensor& input_ids, const at::Tensor& attention_mask,
                      KvCache& cache) override {
    c10::NoGradGuard no_grad;
    STUNT_CHECK(num_blocks() > encoder_blocks_, "t5: the model has no decoder blocks to decode");
    check_token_batch(input_ids, attention_mask, vocab_, int64_t{1} << 40, "t5");
    cache = KvCache{};
    BlockState state;
    encoder_inputs(input_ids, attention_mask, state);
    for (int i = 0; i < encoder_blocks_; ++i) run_block(i, state);
    const at::Tensor memory = rms_norm(state.hidden, encoder_norm_, eps_);
    for (int i = encoder_blocks_; i < num_blocks(); ++i) {
      const Attention& a = blocks_[i].cross_attention;
      cache.cross_keys.push_back(split_heads(call(*a.k, memory), heads_, d_kv_));
      cache.cross_values.push_back(split_heads(call(*a.v, memory), heads_, d_kv_));
    }
    cache.cross_bias = state.context.at("cross_bias");
    cache.keys.resize(num_blocks() - encoder_blocks_);
    cache.values.resize(num_blocks() - encoder_blocks_);
  }

  at::Tensor decode_step(const at::Tensor& new_ids, const at::Tensor& new_mask, KvCache& cache,
                         int64_t keep_last) override {
    c10::NoGradGuard no_grad;
    STUNT_CHECK(!cache.cross_keys.empty(), "t5: call start_decoding before decode_step");
    check_token_batch(new_ids, new_mask, vocab_, int64_t{1} << 40, "t5 decoder");
    const int64_t rows = new_ids.size(0);
    const int64_t q_len = new_ids.size(1);
    const int64_t past = cache.length;
    const int64_t k_len = past + q_len;
    const at::Tensor keep = extend_cache_mask(cache, new_mask, rows, q_len);
    at::Tensor x = call(*shared_, new_ids);
    const auto dtype = x.scalar_type();
    at::Tensor bias = decoder_bias_.defined()
                          ? position_bias(decoder_bias_, q_len, k_len, false, dtype, past)
                          : at::zeros({1, heads_, q_len, k_len}, dtype);
    if (q_len > 1) {
      at::Tensor rows_at = at::arange(q_len).view({q_len, 1}) + past;
      at::Tensor future = at::arange(k_len).view({1, k_len}) > rows_at;
      bias = bias.masked_fill(future.view({1, 1, q_len, k_len}), mask_value(dtype));
    }
    at::Tensor padding = attention_bias(keep, q_len, k_len, false, dtype);
    if (padding.defined()) bias = bias + padding;
    for (int i = encoder_blocks_; i < num_blocks(); ++i) {
      const Block& b = blocks_[i];
      const size_t slot = static_cast<size_t>(i - encoder_blocks_);
      const Attention& self = b.self_attention;
      at::Tensor h = rms_norm(x, b.self_norm, eps_);
      at::Tensor q = split_heads(call(*self.q, h), heads_, d_kv_);
      at::Tensor k = split_heads(call(*self.k, h), heads_, d_kv_);
      at::Tensor v = split_heads(call(*self.v, h), heads_, d_kv_);
      std::tie(k, v) = append_kv(cache.keys[slot], cache.values[slot], k, v);
      x = x + call(*self.o, merge_heads(attention(q, k, v, bias, false, 1.0)));
      const Attention& cross = b.cross_attention;
      h = rms_norm(x, b.cross_norm, eps_);
      q = split_heads(call(*cross.q, h), heads_, d_kv_);
      x = x +
          call(*cross.o, merge_heads(attention(q, cache.cross_keys[slot], cache.cross_values[slot],
                                               cache.cross_bias, false, 1.0)));
      x = x + feed_forward(b.ff, rms_norm(x, b.ff_norm, eps_));
    }
    cache.length = k_len;
    return logits_of(rms_norm(last_positions(x, keep_last), decoder_norm_, eps_));
  }

  Output head(BlockState& state) override {
    if (encoder_blocks_ == num_blocks()) start_decoder(state);  // no decoder blocks
    at::Tensor hidden = dropout(rms_norm(state.hidden, decoder_norm_, eps_), dropout_);
    return {logits_of(hidden), hidden};
  }

 private:
  struct Attention {
    Layer *q, *k, *v, *o;
  };
  struct FeedForward {
    Layer* wi = nullptr;
    Layer* wi_gate = nullptr;
    Layer* wo = nullptr;
  };
  struct Block {
    at::Tensor self_norm, cross_norm, ff_norm;
    Attention self_attention{}, cross_attention{};
    FeedForward ff;
  };

  at::Tensor logits_of(const at::Tensor& hidden) const {
    at::Tensor scaled =
        scale_outputs_ ? hidden * std::pow(static_cast<double>(d_model_), -0.5) : hidden;
    return call(*lm_head_, scaled);
  }

  // Sets the embedded encoder input and the encoder's masks in `state`.
  void encoder_inputs(const at::Tensor& input_ids, const at::Tensor& attention_mask,
                      BlockState& state) const {
    const int64_t seq = input_ids.size(1);
    state.hidden = dropout(call(*shared_, input_ids), dropout_);
    const auto dtype = state.hidden.scalar_type();
    at::Tensor position = position_bias(encoder_bias_, seq, seq, /*bidirectional=*/true, dtype);
    at::Tensor padding = attention_bias(attention_mask, seq, seq, false, dtype);
    state.context["encoder_bias"] = padding.defined() ? position + padding : position;
    state.context["cross_bias"] = padding;
  }

  // Relative-position bias [1, heads, q_len, k_len] for queries at q_offset + [0, q_len).
  at::Tensor position_bias(const at::Tensor& table, int64_t q_len, int64_t k_len,
                           bool bidirectional, c10::ScalarType dtype, int64_t q_offset = 0) const {
    at::Tensor relative =
        at::arange(k_len).view({1, k_len}) - (at::arange(q_len).view({q_len, 1}) + q_offset);
    at::Tensor buckets =
        relative_position_buckets(relative, bidirectional, buckets_, max_distance_);
    return at::embedding(table, buckets).permute({2, 0, 1}).unsqueeze(0).to(dtype);
  }

  void start_decoder(BlockState& state) {
    state.context["encoder_hidden"] =
        dropout(rms_norm(state.hidden, encoder_norm_, eps_), dropout_);
    const at::Tensor& ids = state.context.at("decoder_input_ids");
    state.hidden = dropout(call(*shared_, ids), dropout_);
    const int64_t seq = ids.size(1);
    const auto dtype = state.hidden.scalar_type();
    at::Tensor causal = at::ones({seq, seq}, at::kBool).tril().logical_not();
    at::Tensor bias = decoder_bias_.defined() ? position_bias(decoder_bias_, seq, seq, false, dtype)
                                              : at::zeros({1, heads_, seq, seq}, dtype);
    state.context["decoder_bias"] =
        bias.masked_fill(causal.view({1, 1, seq, seq}), mask_value(dtype));
  }

  at::Tensor attend(const Attention& a, const at::Tensor& x, const at::Tensor& memory,
                    const at::Tensor& bias) const {
    const at::Tensor& source = memory.defined() ? memory : x;
    at::Tensor q = split_heads(call(*a.q, x), heads_, d_kv_);
    at::Tensor k = split_heads(call(*a.k, source), heads_, d_kv_);
    at::Tensor v = split_heads(call(*a.v, source), heads_, d_kv_);
    return call(*a.o,
                merge_heads(attention(q, k, v, bias, false, 1.0, attention_dropout(dropout_))));
  }

  at::Tensor feed_forward(const FeedForward& f, const at::Tensor& x) const {
    at::Tensor h = call(*f.wi, x);
    h = f.wi_gate != nullptr ? gated_activation(activation_, h, call(*f.wi_gate, x))
                             : activation(activation_, h);
    return call(*f.wo, dropout(h, dropout_));
  }

  int64_t d_model_, heads_, d_kv_, vocab_, buckets_, max_distance_, decoder_start_;
  double eps_;
  double dropout_ = 0.0;
  bool gated_, scale_outputs_;
  std::string activation_;
  int encoder_blocks_ = 0;
  Layer* shared_;
  Layer* lm_head_;
  at::Tensor encoder_bias_, decoder_bias_, encoder_norm_, decoder_norm_;
  std::vector<Block> blocks_;
};

}  // namespace

std::unique_ptr<HfModel> load_t5(HfConfig config, const std::filesystem::path& source,
                                 std::unique_ptr<io::Checkpoint> weights, c10::ScalarType dtype) {
  return std::make_unique<T5>(std::move(config), source, std::move(weights), dtype);
}

// What structured pruning can cut: both stacks' blocks, heads (self-attention heads share
// one relative-position bias per stack), FFN channels.
void t5_layout(StructureLayout& layout, const HfConfig& c, const NameSet& tensors) {
  const int64_t encoder = c.integer("num_layers");
  const int64_t decoder = c.integer("num_decoder_layers", encoder);
  layout.stacks.push_back({"encoder", "encoder.block.", "num_layers", encoder, 0});
  layout.stacks.push_back(
      {"decoder", "decoder.block.", "num_decoder_layers", decoder, static_cast<int>(encoder)});
  layout.heads = layout.kv_heads = c.integer("num_heads");
  layout.head_dim = c.integer("d_kv");
  layout.heads_key = "num_heads";
  layout.ffn_width = c.integer("d_ff");
  layout.ffn_width_key = "d_ff";
  const std::vector<SlicedTensor> attention = {{"q.weight", 0, false},
                                               {"k.weight", 0, false},
                                               {"v.weight", 0, false},
                                               {"o.weight", 1, false}};
  const std::vector<SlicedTensor> ffn = {{"wi.weight", 0, false},
                                         {"wi_0.weight", 0, false},
                                         {"wi_1.weight", 0, false},
                                         {"wo.weight", 1, false}};
  for (size_t s = 0; s < layout.stacks.size(); ++s) {
    const BlockStack& stack = layout.stacks[s];
    const bool is_decoder = stack.name == "decoder";
    layout.position_bias.push_back(stack.prefix +
                                   "0.layer.0.SelfAttention.relative_attention_bias.weight");
    for (int i = 0; i < stack.count; ++i) {
      const int block = stack.first_block + i;
      const std::string self = str(stack.prefix, i, ".layer.0.SelfAttention.");
      layout.attention.push_back(
          {self, block, self + "o", static_cast<int>(s), present(tensors, self, attention)});
      if (is_decoder) {
        const std::string cross = str(stack.prefix, i, ".layer.1.EncDecAttention.");
        layout.attention.push_back(
            {cross, block, cross + "o", -1, present(tensors, cross, attention)});
      }
      const std::string f =
          str(stack.prefix, i, is_decoder ? ".layer.2" : ".layer.1", ".DenseReluDense.");
      layout.ffns.push_back({f, block, f + "wo", present(tensors, f, ffn)});
    }
  }
}

}  // namespace stunt::model::detail
