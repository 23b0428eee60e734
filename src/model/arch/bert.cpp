// BERT-family encoders (BertModel and the BertFor* heads' "bert." weights): MiniLM, BERT,
// sentence-transformers encoders. Post-norm blocks, learned absolute positions.
#include <ATen/ATen.h>

#include <cmath>

#include "detail/architectures.h"
#include "detail/nn_ops.h"
#include "detail/weight_loader.h"
#include "stunt/core/error.h"

namespace stunt::model::detail {
namespace {

class Bert final : public HfModel {
 public:
  Bert(HfConfig config, const std::filesystem::path& source,
       std::unique_ptr<io::Checkpoint> weights, c10::ScalarType dtype)
      : HfModel(std::move(config), source) {
    const HfConfig& c = config_;
    hidden_ = c.integer("hidden_size");
    heads_ = c.integer("num_attention_heads");
    const int64_t layers = c.integer("num_hidden_layers");
    const int64_t intermediate = c.integer("intermediate_size");
    vocab_ = c.integer("vocab_size");
    max_positions_ = c.integer("max_position_embeddings");
    const int64_t type_vocab = c.integer("type_vocab_size", 2);
    eps_ = c.number("layer_norm_eps", 1e-12);
    // transformers' BertConfig defaults; the classifier falls back to the hidden rate.
    hidden_dropout_ = c.probability("hidden_dropout_prob", 0.1);
    attention_dropout_ = c.probability("attention_probs_dropout_prob", 0.1);
    classifier_dropout_ = c.probability("classifier_dropout", hidden_dropout_);
    activation_ = c.string("hidden_act", "gelu");
    if (!is_known_activation(activation_)) c.fail("hidden_act", "is not a supported activation");
    if (hidden_ % heads_ != 0) {
      c.fail("num_attention_heads", str("does not divide hidden_size ", hidden_));
    }
    const std::string position_type = c.string("position_embedding_type", "absolute");
    if (position_type != "absolute") {
      c.fail("position_embedding_type", "is not supported; supported: \"absolute\"");
    }

    WeightLoader w(std::move(weights), dtype);
    const std::string p = w.find_prefix({"", "bert."}, "embeddings.word_embeddings.weight");
    word_ = &add_layer(
        embedding_layer(p + "embeddings.word_embeddings",
                        w.take(p + "embeddings.word_embeddings.weight", {vocab_, hidden_}),
                        // BertConfig's default is 0; ids outside the vocabulary mean none.
                        c.optional_integer("pad_token_id", INT64_MIN).value_or(0)));
    auto tensor = [&](const std::string& name, std::vector<int64_t> shape) {
      return add_tensor(name, w.take(name, shape));
    };
    positions_ = tensor(p + "embeddings.position_embeddings.weight", {max_positions_, hidden_});
    token_types_ = tensor(p + "embeddings.token_type_embeddings.weight", {type_vocab, hidden_});
    embed_norm_ = {tensor(p + "embeddings.LayerNorm.weight", {hidden_}),
                   tensor(p + "embeddings.LayerNorm.bias", {hidden_})};
    if (w.contains(p + "embeddings.position_ids")) {
      add_tensor(p + "embeddings.position_ids", w.take_as_stored(p + "embeddings.position_ids"));
    }
    auto linear = [&](const std::string& name, int64_t out, int64_t in, int block) -> Layer* {
      return &add_layer(linear_layer(name, w.take(name + ".weight", {out, in}),
                                     w.take(name + ".bias", {out}), block));
    };
    for (int i = 0; i < layers; ++i) {
      const std::string b = str(p, "encoder.layer.", i, ".");
      Block block;
      block.query = linear(b + "attention.self.query", hidden_, hidden_, i);
      block.key = linear(b + "attention.self.key", hidden_, hidden_, i);
      block.value = linear(b + "attention.self.value", hidden_, hidden_, i);
      block.attention_out = linear(b + "attention.output.dense", hidden_, hidden_, i);
      block.attention_norm = {tensor(b + "attention.output.LayerNorm.weight", {hidden_}),
                              tensor(b + "attention.output.LayerNorm.bias", {hidden_})};
      block.intermediate = linear(b + "intermediate.dense", intermediate, hidden_, i);
      block.output = linear(b + "output.dense", hidden_, intermediate, i);
      block.output_norm = {tensor(b + "output.LayerNorm.weight", {hidden_}),
                           tensor(b + "output.LayerNorm.bias", {hidden_})};
      blocks_.push_back(block);
    }
    // BertForSequenceClassification: pooler (dense + tanh on [CLS]) and classifier give class
    // logits. Otherwise the pooler is kept and saved but not run: sentence embeddings pool the
    // last hidden state instead.
    if (w.contains("classifier.weight") && w.contains(p + "pooler.dense.weight")) {
      const int64_t labels =
          c.integer("num_labels",
                    static_cast<int64_t>(c.has("id2label") && c.json().at("id2label").is_object()
                                             ? c.json().at("id2label").size()
                                             : 2));
      pooler_ = linear(p + "pooler.dense", hidden_, hidden_, -1);
      classifier_ = linear("classifier", labels, hidden_, -1);
    } else {
      for (const char* part : {"weight", "bias"}) {
        const std::string name = p + "pooler.dense." + part;
        std::vector<int64_t> shape = std::string(part) == "weight"
                                         ? std::vector<int64_t>{hidden_, hidden_}
                                         : std::vector<int64_t>{hidden_};
        at::Tensor t = w.take_optional(name, shape);
        if (t.defined()) add_tensor(name, t);
      }
    }
    // Heads of BertFor* classes are not part of the encoder.
    w.ignore_unused([](const std::string& name) { return name.rfind("cls.", 0) == 0; });
    w.finish("bert");
    stored_dtypes_ = w.stored_dtypes();
  }

  std::string architecture() const override { return "bert"; }
  int num_blocks() const override { return static_cast<int>(blocks_.size()); }

  BlockState embed(const Batch& batch) override {
    check_token_batch(batch.input_ids, batch.attention_mask, vocab_, max_positions_, "bert");
    const int64_t seq = batch.input_ids.size(1);
    at::Tensor x =
        call(*word_, batch.input_ids) + token_types_[0] + positions_.narrow(0, 0, seq).unsqueeze(0);
    BlockState state;
    state.hidden = dropout(
        at::layer_norm(x, {hidden_}, embed_norm_.first, embed_norm_.second, eps_), hidden_dropout_);
    state.context["bias"] =
        attention_bias(batch.attention_mask, seq, seq, /*causal=*/false, x.scalar_type());
    return state;
  }

  void run_block(int index, BlockState& state) override {
    const Block& b = blocks_.at(index);
    const int64_t head_dim = hidden_ / heads_;
    at::Tensor x = state.hidden;
    at::Tensor q = split_heads(call(*b.query, x), heads_, head_dim);
    at::Tensor k = split_heads(call(*b.key, x), heads_, head_dim);
    at::Tensor v = split_heads(call(*b.value, x), heads_, head_dim);
    at::Tensor context = attention(q, k, v, state.context.at("bias"), false,
                                   1.0 / std::sqrt(static_cast<double>(head_dim)),
                                   attention_dropout(attention_dropout_));
    at::Tensor attended = dropout(call(*b.attention_out, merge_heads(context)), hidden_dropout_);
    x = at::layer_norm(attended + x, {hidden_}, b.attention_norm.first, b.attention_norm.second,
                       eps_);
    at::Tensor h = dropout(call(*b.output, activation(activation_, call(*b.intermediate, x))),
                           hidden_dropout_);
    state.hidden =
        at::layer_norm(h + x, {hidden_}, b.output_norm.first, b.output_norm.second, eps_);
  }

  Output head(BlockState& state) override {
    if (classifier_ == nullptr) return {at::Tensor(), state.hidden};
    at::Tensor pooled = at::tanh(call(*pooler_, state.hidden.select(1, 0)));
    return {call(*classifier_, dropout(pooled, classifier_dropout_)), state.hidden};
  }

 private:
  using Norm = std::pair<at::Tensor, at::Tensor>;
  struct Block {
    Layer *query, *key, *value, *attention_out, *intermediate, *output;
    Norm attention_norm, output_norm;
  };
  int64_t hidden_, heads_, vocab_, max_positions_;
  double eps_;
  double hidden_dropout_ = 0.0, attention_dropout_ = 0.0, classifier_dropout_ = 0.0;
  std::string activation_;
  Layer* word_;
  Layer* pooler_ = nullptr;
  Layer* classifier_ = nullptr;
  at::Tensor positions_, token_types_;
  Norm embed_norm_;
  std::vector<Block> blocks_;
};

}  // namespace

std::unique_ptr<HfModel> load_bert(HfConfig config, const std::filesystem::path& source,
                                   std::unique_ptr<io::Checkpoint> weights, c10::ScalarType dtype) {
  return std::make_unique<Bert>(std::move(config), source, std::move(weights), dtype);
}

// What structured pruning can cut: blocks and FFN channels (not heads, see heads_refusal).
void bert_layout(StructureLayout& layout, const HfConfig& c, const NameSet& tensors) {
  const std::string p = prefix_of(tensors, {"bert.", ""}, "embeddings.word_embeddings.weight");
  BlockStack stack{"", p + "encoder.layer.", "num_hidden_layers", c.integer("num_hidden_layers"),
                   0};
  layout.stacks.push_back(stack);
  layout.position_bias.push_back("");
  layout.heads_refusal =
      "transformers derives BERT's head size from hidden_size / num_attention_heads, so a BERT "
      "with fewer heads would not load; prune its FFN channels or whole layers instead";
  layout.ffn_width = c.integer("intermediate_size");
  layout.ffn_width_key = "intermediate_size";
  const std::vector<SlicedTensor> ffn = {{"intermediate.dense.weight", 0, false},
                                         {"intermediate.dense.bias", 0, false},
                                         {"output.dense.weight", 1, false}};
  for (int i = 0; i < stack.count; ++i) {
    const std::string f = str(stack.prefix, i, ".");
    layout.ffns.push_back({f, i, f + "output.dense", present(tensors, f, ffn)});
  }
}

}  // namespace stunt::model::detail
