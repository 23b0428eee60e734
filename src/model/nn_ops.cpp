#include "detail/nn_ops.h"

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>
#include <torch/csrc/autograd/custom_function.h>

#include <cmath>
#include <limits>

#include "stunt/core/error.h"
#include "stunt/kernels/causal_attention.h"
#include "stunt/kernels/dropout.h"
#include "stunt/kernels/gated_silu.h"
#include "stunt/kernels/rms_norm.h"
#include "stunt/kernels/rotary_embedding.h"
#include "stunt/model/model.h"

namespace stunt::model::detail {

namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

/// Whether a kernel's supported() check passes once autograd is out of the way: a custom
/// Function's forward runs with gradients off.
template <typename Check>
bool supported_without_grad(Check check) {
  at::NoGradGuard no_grad;
  return check();
}

/// RMSNorm in training: the kernels' one-pass forward and backward, x and weight kept.
struct TrainingRmsNorm : torch::autograd::Function<TrainingRmsNorm> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, const at::Tensor& weight,
                            double eps) {
    ctx->save_for_backward({x, weight});
    ctx->saved_data["eps"] = eps;
    return kernels::rms_norm(x, weight, eps);
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const variable_list saved = ctx->get_saved_variables();
    auto [grad_x, grad_weight] = kernels::rms_norm_backward(
        grads[0].contiguous(), saved[0], saved[1], ctx->saved_data["eps"].toDouble());
    return {grad_x, grad_weight, at::Tensor()};
  }
};

/// silu(gate) · up in training: gate and up kept, no silu(gate) between the passes.
struct TrainingGatedSilu : torch::autograd::Function<TrainingGatedSilu> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& gate, const at::Tensor& up) {
    ctx->save_for_backward({gate, up});
    return kernels::gated_silu(gate, up);
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const variable_list saved = ctx->get_saved_variables();
    auto [grad_gate, grad_up] =
        kernels::gated_silu_backward(grads[0].contiguous(), saved[0], saved[1]);
    return {grad_gate, grad_up};
  }
};

bool records_gradient(const at::Tensor& a, const at::Tensor& b) {
  return at::GradMode::is_enabled() && (a.requires_grad() || b.requires_grad());
}

}  // namespace

at::Tensor rms_norm(const at::Tensor& x, const at::Tensor& weight, double eps) {
  if (CalibrationKernelScope::active() && kernels::rms_norm_supported(x, weight)) {
    return kernels::rms_norm(x, weight, eps);
  }
  if (records_gradient(x, weight) &&
      supported_without_grad([&] { return kernels::rms_norm_supported(x, weight); })) {
    return TrainingRmsNorm::apply(x, weight, eps);
  }
  if (x.scalar_type() == at::kFloat && weight.scalar_type() == at::kFloat) {
    // ATen's fused kernel: one pass instead of five, the same float32 arithmetic.
    return at::rms_norm(x, {x.size(-1)}, weight, eps);
  }
  at::Tensor x32 = x.to(at::kFloat);
  at::Tensor normed = x32 * at::rsqrt(x32.pow(2).mean(-1, /*keepdim=*/true) + eps);
  return weight * normed.to(x.scalar_type());
}

bool is_known_activation(const std::string& name) {
  return name == "gelu" || name == "gelu_new" || name == "gelu_pytorch_tanh" ||
         name == "gelu_fast" || name == "relu" || name == "silu" || name == "swish" ||
         name == "tanh" || name == "quick_gelu";
}

at::Tensor activation(const std::string& name, const at::Tensor& x) {
  if (name == "gelu") return at::gelu(x);
  if (name == "gelu_new" || name == "gelu_pytorch_tanh" || name == "gelu_fast") {
    return at::gelu(x, "tanh");
  }
  if (name == "relu") return at::relu(x);
  if (name == "silu" || name == "swish") return at::silu(x);
  if (name == "tanh") return at::tanh(x);
  if (name == "quick_gelu") return x * at::sigmoid(1.702 * x);
  throw InternalError("activation " + name + " was not validated when loading");
}

at::Tensor gated_activation(const std::string& name, const at::Tensor& gate, const at::Tensor& up) {
  if ((name == "silu" || name == "swish") && CalibrationKernelScope::active() &&
      kernels::gated_silu_supported(gate, up)) {
    return kernels::gated_silu(gate, up);
  }
  if ((name == "silu" || name == "swish") && records_gradient(gate, up) &&
      supported_without_grad([&] { return kernels::gated_silu_supported(gate, up); })) {
    return TrainingGatedSilu::apply(gate, up);
  }
  at::Tensor gated = activation(name, gate);
  // In place when no autograd graph records it: one MLP-wide tensor less per forward.
  if (at::GradMode::is_enabled()) return gated * up;
  return gated.mul_(up);
}

at::Tensor split_heads(const at::Tensor& x, int64_t heads, int64_t head_dim) {
  return x.view({x.size(0), x.size(1), heads, head_dim}).transpose(1, 2);
}

at::Tensor merge_heads(const at::Tensor& x) {
  return x.transpose(1, 2).reshape({x.size(0), x.size(2), x.size(1) * x.size(3)});
}

double mask_value(c10::ScalarType dtype) {
  switch (dtype) {
    case at::kDouble:
      return std::numeric_limits<double>::lowest();
    case at::kFloat:
      return std::numeric_limits<float>::lowest();
    case at::kBFloat16:
      return static_cast<double>(std::numeric_limits<c10::BFloat16>::lowest());
    case at::kHalf:
      return static_cast<double>(std::numeric_limits<c10::Half>::lowest());
    default:
      throw InternalError(str("no attention mask value for dtype ", c10::toString(dtype)));
  }
}

at::Tensor attention_bias(const at::Tensor& keep_mask, int64_t q_len, int64_t k_len, bool causal,
                          c10::ScalarType dtype, int64_t window) {
  const bool padded = keep_mask.defined() && !keep_mask.all().item<bool>();
  const bool windowed = causal && window > 0 && k_len > window;
  if (!padded && !windowed) return {};
  at::Tensor keep;  // bool [b or 1, 1, q or 1, k]
  if (padded) keep = keep_mask.to(at::kBool).view({keep_mask.size(0), 1, 1, k_len});
  if (causal) {
    // Query i (at absolute position k_len - q_len + i) sees keys up to its own position.
    at::Tensor rows = at::arange(q_len).view({q_len, 1}) + (k_len - q_len);
    at::Tensor cols = at::arange(k_len).view({1, k_len});
    at::Tensor causal_keep = cols <= rows;
    if (windowed) causal_keep = causal_keep.logical_and(rows - cols < window);
    causal_keep = causal_keep.view({1, 1, q_len, k_len});
    keep = keep.defined() ? keep.logical_and(causal_keep) : causal_keep;
  }
  return at::zeros(keep.sizes(), at::TensorOptions().dtype(dtype))
      .masked_fill(keep.logical_not(), mask_value(dtype));
}

at::Tensor cached_attention_bias(const at::Tensor& keep_mask, int64_t q_len, int64_t k_len,
                                 c10::ScalarType dtype, int64_t window) {
  at::Tensor bias = attention_bias(keep_mask, q_len, k_len, /*causal=*/true, dtype, window);
  if (bias.defined() || q_len == k_len || q_len == 1) return bias;
  at::Tensor rows = at::arange(q_len).view({q_len, 1}) + (k_len - q_len);
  at::Tensor cols = at::arange(k_len).view({1, k_len});
  return at::zeros({1, 1, q_len, k_len}, at::TensorOptions().dtype(dtype))
      .masked_fill((cols <= rows).logical_not().view({1, 1, q_len, k_len}), mask_value(dtype));
}

at::Tensor positions_from_mask(const at::Tensor& keep_mask) {
  at::Tensor positions = keep_mask.to(at::kLong).cumsum(-1) - 1;
  return positions.masked_fill(keep_mask == 0, 0);
}

at::Tensor extend_cache_mask(KvCache& cache, const at::Tensor& new_mask, int64_t rows,
                             int64_t new_len) {
  at::Tensor added =
      new_mask.defined() ? new_mask.to(at::kLong) : at::ones({rows, new_len}, at::kLong);
  STUNT_CHECK(added.dim() == 2 && added.size(0) == rows && added.size(1) == new_len,
              "the attention mask of a decoding step has shape ", added.sizes(), "; expected [",
              rows, ", ", new_len, "] like the new ids");
  if (cache.attention_mask.defined()) {
    STUNT_CHECK(cache.attention_mask.size(0) == rows, "the decoding step has ", rows,
                " rows but the cache holds ", cache.attention_mask.size(0),
                "; reorder the cache to the rows being decoded");
    cache.attention_mask = at::cat({cache.attention_mask, added}, 1);
  } else {
    cache.attention_mask = added;
  }
  return cache.attention_mask;
}

at::Tensor last_positions(const at::Tensor& x, int64_t count) {
  STUNT_CHECK(count >= 0 && count <= x.size(1), "keep the last ", count, " of ", x.size(1),
              " positions: expected 0 (all) to ", x.size(1));
  return count == 0 ? x : x.narrow(1, x.size(1) - count, count);
}

namespace {

// The buffer behind a cached [rows, heads, len, dim] view: its positions' capacity, or 0 when
// the view is not a prefix of a [rows, heads, capacity, dim] buffer laid out contiguously.
int64_t cache_capacity(const at::Tensor& t) {
  const int64_t dim = t.size(3);
  if (t.stride(3) != 1 || t.stride(2) != dim || t.stride(1) % dim != 0) return 0;
  const int64_t capacity = t.stride(1) / dim;
  if (t.stride(0) != t.size(1) * t.stride(1)) return 0;
  const int64_t bytes = (t.storage_offset() + t.size(0) * t.stride(0)) * t.element_size();
  if (!t.has_storage() || static_cast<int64_t>(t.storage().nbytes()) < bytes) return 0;
  return capacity;
}

// cached ++ added along the positions, in place when the buffer has room.
at::Tensor append_positions(const at::Tensor& cached, const at::Tensor& added) {
  const int64_t len = cached.size(2);
  const int64_t total = len + added.size(2);
  const int64_t capacity = cache_capacity(cached);
  if (capacity >= total) {
    at::Tensor buffer = cached.as_strided(
        {cached.size(0), cached.size(1), capacity, cached.size(3)}, cached.strides());
    buffer.narrow(2, len, added.size(2)).copy_(added);
    return buffer.narrow(2, 0, total);
  }
  // Growing by a quarter keeps the copies of a long generation linear in its length, and after a
  // prompt's prefill leaves room for 64 new tokens or more at a quarter more memory.
  const int64_t grown = total + std::max<int64_t>(64, total / 4);
  at::Tensor buffer =
      at::empty({cached.size(0), cached.size(1), grown, cached.size(3)}, cached.options());
  buffer.narrow(2, 0, len).copy_(cached);
  buffer.narrow(2, len, added.size(2)).copy_(added);
  return buffer.narrow(2, 0, total);
}

}  // namespace

std::pair<at::Tensor, at::Tensor> append_kv(at::Tensor& cached_k, at::Tensor& cached_v,
                                            const at::Tensor& k, const at::Tensor& v) {
  if (cached_k.defined()) {
    cached_k = append_positions(cached_k, k);
    cached_v = append_positions(cached_v, v);
  } else {
    cached_k = k;
    cached_v = v;
  }
  return {cached_k, cached_v};
}

namespace {

struct SeededDropout : torch::autograd::Function<SeededDropout> {
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& x, double p) {
    const uint64_t seed = kernels::draw_dropout_seed();
    ctx->saved_data["p"] = p;
    // IValue holds int64_t: the seed's bits travel through it unchanged.
    ctx->saved_data["seed"] = static_cast<int64_t>(seed);
    return kernels::dropout_with_seed(x, p, seed);
  }
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const double p = ctx->saved_data["p"].toDouble();
    const auto seed = static_cast<uint64_t>(ctx->saved_data["seed"].toInt());
    return {kernels::dropout_with_seed(grads[0], p, seed), at::Tensor()};
  }
};

/// Where attention() appends what it computes while an AttentionRecording is alive.
thread_local std::vector<AttentionRecord>* active_attention_records = nullptr;

/// Attention spelled out (scores, softmax, dropout, values): for training with attention
/// dropout (SDPA would take its math path then anyway, with ATen's slower dropout), and for
/// recording the probabilities (`record`, when not null, receives them with the values).
at::Tensor explicit_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                              const at::Tensor& bias, bool causal, double scale, double dropout_p,
                              std::vector<AttentionRecord>* record) {
  at::Tensor key = k;
  at::Tensor value = v;
  if (k.size(1) != q.size(1)) {
    const int64_t groups = q.size(1) / k.size(1);
    key = k.repeat_interleave(groups, 1);
    value = v.repeat_interleave(groups, 1);
  }
  at::Tensor scores = at::matmul(q, key.transpose(-2, -1)) * scale;
  if (bias.defined()) {
    scores = scores + bias;
  } else if (causal) {
    const int64_t q_len = q.size(2);
    const int64_t k_len = key.size(2);
    const at::Tensor hidden =
        at::ones({q_len, k_len}, q.options().dtype(at::kBool)).triu(k_len - q_len + 1);
    scores = scores.masked_fill(hidden, mask_value(scores.scalar_type()));
  }
  const at::Tensor probabilities = at::softmax(scores, -1);
  if (record != nullptr) record->push_back({probabilities, value});
  return at::matmul(dropout(probabilities, dropout_p), value);
}

}  // namespace

at::Tensor dropout(const at::Tensor& x, double p) {
  if (p <= 0.0) return x;
  if (x.scalar_type() != at::kFloat || !x.is_cpu()) return at::dropout(x, p, /*train=*/true);
  return SeededDropout::apply(x, p);
}

namespace {

// A decoding step's few queries against shared key/value heads with a mask: the query heads of
// each key/value head become one matrix product against it, where repeating the keys and values
// for SDPA would copy the whole cache every step.
constexpr int64_t kGroupedDecodeQueries = 8;

at::Tensor grouped_decode_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                    const at::Tensor& bias, double scale) {
  const int64_t batch = q.size(0);
  const int64_t heads = q.size(1);
  const int64_t queries = q.size(2);
  const int64_t kv_heads = k.size(1);
  const int64_t keys = k.size(2);
  const int64_t groups = heads / kv_heads;
  // Query head h reads key/value head h / groups (repeat_interleave's order).
  at::Tensor grouped_q = q.reshape({batch, kv_heads, groups * queries, q.size(3)});
  at::Tensor scores = at::matmul(grouped_q, k.transpose(2, 3)).mul_(scale);
  if (bias.defined()) {
    at::Tensor full_bias = bias.expand({batch, heads, queries, keys})
                               .reshape({batch, kv_heads, groups * queries, keys});
    scores.add_(full_bias);
  }
  at::Tensor probs = at::softmax(scores, -1);
  return at::matmul(probs, v).view({batch, heads, queries, v.size(3)});
}

}  // namespace

at::Tensor attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                     const at::Tensor& bias, bool causal, double scale, double dropout_p) {
  if (active_attention_records != nullptr) {
    return explicit_attention(q, k, v, bias, causal, scale, dropout_p, active_attention_records);
  }
  if (dropout_p > 0.0 && q.scalar_type() == at::kFloat && q.is_cpu()) {
    return explicit_attention(q, k, v, bias, causal, scale, dropout_p, nullptr);
  }
  const bool grouped = k.size(1) != q.size(1);
  if (!bias.defined() && causal && dropout_p == 0.0 && CalibrationKernelScope::active() &&
      kernels::causal_attention_supported(q, k, v)) {
    // Calibration's whole-sequence causal attention: only the keys a query may see are scored,
    // where ATen's kernel scores all of a 512-token window.
    return kernels::causal_attention(q, k, v, scale);
  }
  if (!bias.defined()) {
    // Without a mask SDPA's fused CPU kernel reads shared key/value heads itself
    // (enable_gqa), as transformers arranges: no copies.
    return at::scaled_dot_product_attention(q, k, v, std::nullopt, dropout_p, causal, scale,
                                            /*enable_gqa=*/grouped);
  }
  if (grouped && dropout_p == 0.0 && q.size(2) <= kGroupedDecodeQueries) {
    return grouped_decode_attention(q, k, v, bias, scale);
  }
  at::Tensor key = k;
  at::Tensor value = v;
  if (grouped) {
    const int64_t groups = q.size(1) / k.size(1);
    key = k.repeat_interleave(groups, 1);
    value = v.repeat_interleave(groups, 1);
  }
  return at::scaled_dot_product_attention(q, key, value, bias, dropout_p, /*is_causal=*/false,
                                          scale);
}

AttentionRecording::AttentionRecording(std::vector<AttentionRecord>& records)
    : previous_(active_attention_records) {
  active_attention_records = &records;
}

AttentionRecording::~AttentionRecording() { active_attention_records = previous_; }

namespace {

// rope_parameters (transformers 5) or rope_theta + rope_scaling (4.x).
struct RopeSettings {
  double theta = 10000.0;
  std::string type = "default";
  nlohmann::json params = nlohmann::json::object();
};

RopeSettings read_rope(const HfConfig& config) {
  RopeSettings rope;
  if (config.has("rope_parameters")) {
    const nlohmann::json& p = config.json().at("rope_parameters");
    if (!p.is_object()) config.fail("rope_parameters", "is not an object");
    rope.params = p;
  } else if (config.has("rope_scaling")) {
    const nlohmann::json& p = config.json().at("rope_scaling");
    if (!p.is_object()) config.fail("rope_scaling", "is not an object");
    rope.params = p;
  }
  if (rope.params.contains("rope_theta")) {
    HfConfig sub(rope.params, config.source() + " rope_parameters");
    rope.theta = sub.number("rope_theta");
  } else {
    rope.theta = config.number("rope_theta", 10000.0);
  }
  for (const char* key : {"rope_type", "type"}) {
    if (rope.params.contains(key) && rope.params[key].is_string()) {
      rope.type = rope.params[key].get<std::string>();
      break;
    }
  }
  return rope;
}

}  // namespace

Rotary::Rotary(const HfConfig& config, int64_t head_dim) {
  const RopeSettings rope = read_rope(config);
  const std::string where = config.source() + " rope parameters";
  HfConfig params(rope.params, where);
  const double partial = config.number("partial_rotary_factor", 1.0);
  const int64_t dim = static_cast<int64_t>(head_dim * partial);
  STUNT_CHECK_AS(FormatError, dim == head_dim, config.source(),
                 ": partial_rotary_factor other than 1 is not supported");
  at::Tensor exponents = at::arange(0, dim, 2, at::kLong).to(at::kFloat) / static_cast<double>(dim);
  inv_freq_ = 1.0 / at::pow(rope.theta, exponents);
  if (rope.type == "default") return;
  if (rope.type == "linear") {
    inv_freq_ = inv_freq_ / params.number("factor");
    return;
  }
  if (rope.type == "llama3") {
    const double factor = params.number("factor");
    const double low = params.number("low_freq_factor");
    const double high = params.number("high_freq_factor");
    const double old_len = static_cast<double>(params.integer("original_max_position_embeddings"));
    STUNT_CHECK_AS(FormatError, high > low, where,
                   ": high_freq_factor must exceed low_freq_factor");
    const double low_wavelen = old_len / low;
    const double high_wavelen = old_len / high;
    at::Tensor wavelen = 2 * M_PI / inv_freq_;
    at::Tensor scaled = at::where(wavelen > low_wavelen, inv_freq_ / factor, inv_freq_);
    at::Tensor smooth = (old_len / wavelen - low) / (high - low);
    at::Tensor smoothed = (1 - smooth) * scaled / factor + smooth * scaled;
    at::Tensor medium = (wavelen >= high_wavelen).logical_and(wavelen <= low_wavelen);
    inv_freq_ = at::where(medium, smoothed, scaled);
    return;
  }
  throw FormatError(str(where, ": rope type \"", rope.type,
                        "\" is not supported; supported: default, linear, llama3"));
}

std::pair<at::Tensor, at::Tensor> Rotary::tables(const at::Tensor& positions,
                                                 c10::ScalarType dtype) const {
  at::Tensor freqs = positions.to(at::kFloat).unsqueeze(-1) * inv_freq_;  // [b, s, d/2]
  at::Tensor emb = at::cat({freqs, freqs}, -1);
  return {(emb.cos() * attention_scaling_).to(dtype), (emb.sin() * attention_scaling_).to(dtype)};
}

at::Tensor Rotary::apply(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin) {
  // One pass, bit-identical to the form below, so inference uses it too.
  if (kernels::rotary_embedding_supported(x, cos, sin))
    return kernels::rotary_embedding(x, cos, sin);
  const int64_t half = x.size(-1) / 2;
  at::Tensor rotated = at::cat({-x.narrow(-1, half, half), x.narrow(-1, 0, half)}, -1);
  return x * cos.unsqueeze(1) + rotated * sin.unsqueeze(1);
}

}  // namespace stunt::model::detail
