#pragma once
/// Inverted dropout from a counter-based generator: ATen's `bernoulli_` draws one element at a
/// time from a shared generator (about 3 ns an element here, a sixth of a MiniLM training step);
/// hashing (seed, element index) is several times cheaper, the same at every thread count, and
/// lets the backward pass rebuild the mask from the seed instead of keeping it.

#include <ATen/core/Tensor.h>

#include <cstdint>

namespace stunt::kernels {

/// x with each element kept with probability 1 - p and scaled by 1 / (1 - p), or zeroed: the
/// distribution of `at::dropout(x, p, true)`. Which elements are kept depends only on `seed`
/// and the element's index in x's contiguous layout, so applying it to the gradient with the
/// same seed is its backward. p = 0 returns a copy; p >= 1 zeros. Float32 CPU tensors.
at::Tensor dropout_with_seed(const at::Tensor& x, double p, uint64_t seed);

/// A fresh seed for dropout_with_seed() drawn from ATen's default CPU generator, so that a run
/// seeded (and checkpointed) through that generator replays the same masks.
uint64_t draw_dropout_seed();

}  // namespace stunt::kernels
