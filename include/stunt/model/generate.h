#pragma once
/// Text generation with a KV cache for Stunt's native causal LMs (Llama family, GPT-2) and T5:
/// greedy decoding, sampling (temperature, top-k, top-p, seeded), and beam search, with the
/// same choices as transformers' `generate` for the same arguments.

#include <cstdint>
#include <optional>
#include <vector>

#include "stunt/model/hf_model.h"

namespace stunt::model {

/// How generate() picks tokens and when it stops.
struct GenerationOptions {
  /// Tokens to generate per prompt at most (eos included).
  int64_t max_new_tokens = 32;
  /// Sample from the (tempered, top-k / top-p filtered) distribution instead of taking the most
  /// likely token. Ignored by beam search (num_beams > 1).
  bool do_sample = false;
  /// Logits are divided by it before sampling; > 0.
  double temperature = 1.0;
  /// Sample among the k most likely tokens only (ties at the k-th kept); 0: all tokens. Note
  /// transformers' generation_config defaults to 50; Stunt's default is off.
  int64_t top_k = 0;
  /// Sample among the smallest set of most likely tokens whose probability reaches top_p
  /// (nucleus sampling, as transformers' TopPLogitsWarper); 1: all tokens.
  double top_p = 1.0;
  /// Seed of the sampler: a std::mt19937_64 (fully specified by the C++ standard), one draw per
  /// sequence and step turned into a double in [0, 1) from its top 53 bits, so the same seed
  /// gives the same tokens on every machine (given the same logits).
  uint64_t seed = 0;
  /// > 1: beam search as transformers' `_beam_search` (score = sum of log-probabilities /
  /// generated_length ^ length_penalty; eos ends a beam).
  int64_t num_beams = 1;
  double length_penalty = 1.0;
  /// Beam search ends for a prompt once num_beams beams have finished (transformers'
  /// early_stopping=True); false: transformers' default heuristic.
  bool early_stopping = false;
  /// The token that ends a sequence. Unset: eos_token_id of the model's generation_config.json,
  /// else config.json (every id when it is a list); none when neither names one.
  std::optional<int64_t> eos_token_id;
  /// Causal LMs: prompts are prefilled this many at a time, each group padded to its own
  /// longest prompt, and their caches joined for decoding all of them together; 0: one prefill
  /// of every prompt. A decode step reads every weight once, so the more rows it decodes the
  /// less each token costs, while a prefill pays for every padded position: small prefill
  /// groups of similar length and many decode rows get both. The tokens are those of one
  /// prefill up to the float rounding of different batch shapes. T5 encodes all at once.
  int64_t prefill_rows = 0;
};

/// Generates a continuation of each prompt (token ids; prompts may differ in length) and returns
/// the new tokens only, per prompt: up to max_new_tokens, ending with eos when it was produced.
/// Causal LMs pad prompts on the left with an attention mask and positions counted from the
/// mask, as transformers' generate does; T5 encodes the prompts once and decodes from
/// decoder_start_token_id. Throws NotImplementedError for models without incremental decoding
/// (BERT, TorchScript) and ValueError for bad options, naming the fix.
std::vector<std::vector<int64_t>> generate(HfModel& model,
                                           const std::vector<std::vector<int64_t>>& prompts,
                                           const GenerationOptions& options = {});

/// A generation with the model's log-probability of each of its tokens.
struct ScoredGeneration {
  std::vector<int64_t> tokens;
  /// log p(token | prompt, earlier tokens) under the model's own distribution (temperature 1,
  /// no top-k / top-p): the teacher's confidence, whatever chose the token.
  std::vector<float> log_probs;
  /// The entropy (nats) of the model's own next-token distribution where it chose each token:
  /// how unsure the teacher was, whatever the token.
  std::vector<float> entropies;
};

/// generate() with each new token's log-probability. Greedy decoding and sampling record them as
/// they decode; beam search scores the chosen beams again, teacher-forced
/// (continuation_log_probs).
std::vector<ScoredGeneration> generate_scored(HfModel& model,
                                              const std::vector<std::vector<int64_t>>& prompts,
                                              const GenerationOptions& options = {});

/// log p(continuation[t] | prompt, continuation[:t]) for each (prompt, continuation) pair, in one
/// teacher-forced forward per pair (T5: the prompt encoded, the continuation decoded); with
/// `entropies`, also the entropy of each of those next-token distributions.
std::vector<std::vector<float>> continuation_log_probs(
    HfModel& model, const std::vector<std::vector<int64_t>>& prompts,
    const std::vector<std::vector<int64_t>>& continuations,
    std::vector<std::vector<float>>* entropies = nullptr);

/// The eos ids generate() stops at when options.eos_token_id is unset: generation_config.json
/// beside the model (a folder), else config.json's eos_token_id; empty when none.
std::vector<int64_t> default_eos_token_ids(const HfModel& model);

}  // namespace stunt::model
