#pragma once
/// Attention distillation: the student's self-attention learns the teacher's, head by head.
///
/// TinyBERT (Jiao et al. 2020) matches attention maps by mean squared error at mapped layers;
/// MiniLM (Wang et al. 2020) matches the last layer's attention distributions and its value
/// relations (softmax(v·vᵀ/√d), the scaled dot products of the values with each other) by KL
/// divergence, which needs the same number of heads but not the same head width. Attention maps
/// here are probabilities [batch, heads, queries, keys] over one sequence (queries = keys), and
/// `keep` [batch, positions] (nonzero = a token, zero = padding; undefined = all tokens) says
/// which positions count. Each loss is differentiable in the student's tensors (the teacher's
/// are detached) and computed in float32 (float64 stays). ValueError for shapes that differ,
/// naming heads and positions, and when no position is scored.

#include <ATen/core/Tensor.h>

namespace stunt::distill {

/// TinyBERT: mean((s − t)²) over the entries whose query and key are both tokens.
at::Tensor attention_map_mse(const at::Tensor& student, const at::Tensor& teacher,
                             const at::Tensor& keep = {});

/// MiniLM's attention transfer: KL(t ‖ s) summed over the keys, averaged over heads and the
/// queries that are tokens.
at::Tensor attention_kl(const at::Tensor& student, const at::Tensor& teacher,
                        const at::Tensor& keep = {});

/// MiniLM's value relation of values [batch, heads, positions, head_dim]: softmax over keys of
/// v·vᵀ / √head_dim, keys that are padding left out. [batch, heads, positions, positions].
at::Tensor value_relation(const at::Tensor& values, const at::Tensor& keep = {});

/// MiniLM's loss at one layer pair: attention_kl of the probabilities plus attention_kl of the
/// value relations.
at::Tensor minilm_loss(const at::Tensor& student_probabilities,
                       const at::Tensor& teacher_probabilities, const at::Tensor& student_values,
                       const at::Tensor& teacher_values, const at::Tensor& keep = {});

}  // namespace stunt::distill
