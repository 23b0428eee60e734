#pragma once
// A tiny Llama (2 blocks, hidden 16, grouped-query attention, tied embeddings) that unit tests
// write to a temporary folder and load like any Hugging Face checkpoint.

#include <ATen/ATen.h>

#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "stunt/io/safetensors.h"
#include "test_util.h"

namespace stunt::test::tiny_llama {

constexpr int64_t kVocab = 40, kHidden = 16, kInter = 24, kLayers = 2, kHeads = 4, kKv = 2;

inline nlohmann::json config() {
  return {{"model_type", "llama"},         {"hidden_size", kHidden},
          {"intermediate_size", kInter},   {"num_hidden_layers", kLayers},
          {"num_attention_heads", kHeads}, {"num_key_value_heads", kKv},
          {"vocab_size", kVocab},          {"rms_norm_eps", 1e-6},
          {"tie_word_embeddings", true},   {"max_position_embeddings", 64}};
}

/// Seeded random weights (seed 0), scaled by 0.2.
inline std::vector<io::NamedTensor> weights() {
  at::manual_seed(0);
  const int64_t kv_dim = kKv * kHidden / kHeads;
  std::vector<io::NamedTensor> t;
  auto add = [&](const std::string& name, std::vector<int64_t> shape) {
    t.emplace_back(name, at::randn(shape) * 0.2);
  };
  add("model.embed_tokens.weight", {kVocab, kHidden});
  for (int i = 0; i < kLayers; ++i) {
    const std::string b = "model.layers." + std::to_string(i) + ".";
    add(b + "input_layernorm.weight", {kHidden});
    add(b + "self_attn.q_proj.weight", {kHidden, kHidden});
    add(b + "self_attn.k_proj.weight", {kv_dim, kHidden});
    add(b + "self_attn.v_proj.weight", {kv_dim, kHidden});
    add(b + "self_attn.o_proj.weight", {kHidden, kHidden});
    add(b + "post_attention_layernorm.weight", {kHidden});
    add(b + "mlp.gate_proj.weight", {kInter, kHidden});
    add(b + "mlp.up_proj.weight", {kInter, kHidden});
    add(b + "mlp.down_proj.weight", {kHidden, kInter});
  }
  add("model.norm.weight", {kHidden});
  return t;
}

/// Writes config.json and model.safetensors into `folder`.
inline void write(const std::filesystem::path& folder, const nlohmann::json& config,
                  const std::vector<io::NamedTensor>& weights) {
  std::filesystem::create_directories(folder);
  write_text(folder / "config.json", config.dump());
  io::save_safetensors(folder / "model.safetensors", weights);
}

}  // namespace stunt::test::tiny_llama
