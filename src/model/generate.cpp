// Generation with a KV cache: greedy decoding, seeded sampling and beam search over the
// incremental-decoding hook of HfModel (decode_step), following transformers' `generate`.
#include "stunt/model/generate.h"

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <numeric>
#include <random>

#include "stunt/core/error.h"
#include "stunt/model/thread_governor.h"

namespace stunt::model {

void KvCache::reorder(const at::Tensor& rows) {
  for (auto* list : {&keys, &values, &cross_keys, &cross_values}) {
    for (at::Tensor& t : *list) {
      if (t.defined()) t = t.index_select(0, rows);
    }
  }
  if (cross_bias.defined()) cross_bias = cross_bias.index_select(0, rows);
  if (attention_mask.defined()) attention_mask = attention_mask.index_select(0, rows);
}

namespace {

// transformers' beam search marks impossible candidates by adding this to their log-probability
// (generation/utils.py, _beam_search and helpers).
constexpr double kBeamPenalty = -1.0e9;

std::vector<int64_t> eos_ids_of(const nlohmann::json& json) {
  std::vector<int64_t> out;
  auto it = json.find("eos_token_id");
  if (it == json.end() || it->is_null()) return out;
  if (it->is_number_integer()) out.push_back(it->get<int64_t>());
  if (it->is_array()) {
    for (const auto& id : *it) {
      if (id.is_number_integer()) out.push_back(id.get<int64_t>());
    }
  }
  return out;
}

int64_t pad_id_of(const HfModel& model) {
  // Padded positions are masked out; any valid id will do.
  const nlohmann::json& json = model.config().json();
  auto it = json.find("pad_token_id");
  if (it != json.end() && it->is_number_integer()) {
    const int64_t id = it->get<int64_t>();
    if (id >= 0) return id;
  }
  return 0;
}

// Prompts as one [rows, len] batch, padded on the left (causal LMs, so every prompt ends at the
// last column) or the right (encoders), with its keep-mask.
std::pair<at::Tensor, at::Tensor> pad_prompts(const std::vector<std::vector<int64_t>>& prompts,
                                              int64_t pad_id, bool left) {
  int64_t len = 0;
  for (const auto& p : prompts) len = std::max<int64_t>(len, static_cast<int64_t>(p.size()));
  const auto rows = static_cast<int64_t>(prompts.size());
  at::Tensor ids = at::full({rows, len}, pad_id, at::kLong);
  at::Tensor mask = at::zeros({rows, len}, at::kLong);
  for (int64_t r = 0; r < rows; ++r) {
    const auto& p = prompts[r];
    const auto n = static_cast<int64_t>(p.size());
    const int64_t start = left ? len - n : 0;
    ids[r].narrow(0, start, n).copy_(at::tensor(p, at::kLong));
    mask[r].narrow(0, start, n).fill_(1);
  }
  return {ids, mask};
}

// The prompt prefix every sequence starts from and the logits [rows, vocab] of its next token.
struct Prefill {
  at::Tensor prompt_ids;  // [rows, prompt_len]: the padded prompt, or T5's decoder start
  at::Tensor logits;
};

// The caches of prompt groups prefilled apart, joined into one: every row left-padded (zero
// keys and values, masked out) to the longest group's length, with room for `room` more
// positions so that decoding appends in place.
KvCache join_prefilled(std::vector<KvCache>& parts, int64_t room) {
  int64_t rows = 0;
  int64_t length = 0;
  for (const KvCache& part : parts) {
    rows += part.attention_mask.size(0);
    length = std::max(length, part.length);
  }
  KvCache joined;
  joined.length = length;
  joined.attention_mask = at::zeros({rows, length}, at::kLong);
  const size_t blocks = parts.front().keys.size();
  for (size_t block = 0; block < blocks; ++block) {
    for (bool keys : {true, false}) {
      const at::Tensor& first = keys ? parts.front().keys[block] : parts.front().values[block];
      at::Tensor buffer =
          at::zeros({rows, first.size(1), length + room, first.size(3)}, first.options());
      int64_t row = 0;
      for (KvCache& part : parts) {
        at::Tensor& t = keys ? part.keys[block] : part.values[block];
        buffer.narrow(0, row, t.size(0)).narrow(2, length - part.length, part.length).copy_(t);
        row += t.size(0);
        t = at::Tensor();  // the part's copy is no longer needed
      }
      (keys ? joined.keys : joined.values).push_back(buffer.narrow(2, 0, length));
    }
  }
  int64_t row = 0;
  for (const KvCache& part : parts) {
    const int64_t n = part.attention_mask.size(0);
    joined.attention_mask.narrow(0, row, n)
        .narrow(1, length - part.length, part.length)
        .copy_(part.attention_mask);
    row += n;
  }
  return joined;
}

Prefill prefill(HfModel& model, const std::vector<std::vector<int64_t>>& prompts, KvCache& cache,
                const GenerationOptions& o) {
  const auto rows = static_cast<int64_t>(prompts.size());
  const int64_t pad = pad_id_of(model);
  cache = KvCache{};
  if (model.is_encoder_decoder()) {
    auto [ids, mask] = pad_prompts(prompts, pad, /*left=*/false);
    model.start_decoding(ids, mask, cache);
    at::Tensor start = at::full({rows, 1}, model.decoder_start_token_id(), at::kLong);
    return {start, model.decode_step(start, {}, cache, 1).select(1, -1)};
  }
  auto [ids, mask] = pad_prompts(prompts, pad, /*left=*/true);
  if (o.prefill_rows <= 0 || rows <= o.prefill_rows) {
    return {ids, model.decode_step(ids, mask, cache, 1).select(1, -1)};
  }
  std::vector<KvCache> parts;
  std::vector<at::Tensor> logits;
  for (int64_t start = 0; start < rows; start += o.prefill_rows) {
    const int64_t end = std::min(rows, start + o.prefill_rows);
    auto [part_ids, part_mask] = pad_prompts(
        std::vector<std::vector<int64_t>>(prompts.begin() + start, prompts.begin() + end), pad,
        /*left=*/true);
    parts.emplace_back();
    logits.push_back(model.decode_step(part_ids, part_mask, parts.back(), 1).select(1, -1));
  }
  cache = join_prefilled(parts, o.max_new_tokens);
  return {ids, at::cat(logits, 0)};
}

// One uniform double in [0, 1) from the top 53 bits of a 64-bit draw.
double uniform(std::mt19937_64& rng) {
  return static_cast<double>(rng() >> 11) * (1.0 / 9007199254740992.0);  // 2^-53
}

// transformers' order of logits warpers: temperature, top-k, top-p; then one draw by inverse
// CDF over the kept tokens in id order.
int64_t sample_token(const at::Tensor& logits_row, const GenerationOptions& o,
                     std::mt19937_64& rng) {
  at::Tensor row = logits_row.to(at::kDouble).contiguous();
  const double* data = row.data_ptr<double>();
  const int64_t vocab = row.numel();
  constexpr double kRemoved = -std::numeric_limits<double>::infinity();
  std::vector<double> z(data, data + vocab);
  for (double& v : z) v /= o.temperature;
  if (o.top_k > 0 && o.top_k < vocab) {
    std::vector<double> sorted = z;
    std::nth_element(sorted.begin(), sorted.begin() + (o.top_k - 1), sorted.end(),
                     std::greater<double>());
    const double kth = sorted[o.top_k - 1];
    for (double& v : z) {
      if (v < kth) v = kRemoved;
    }
  }
  auto softmax = [](const std::vector<double>& x) {
    const double top = *std::max_element(x.begin(), x.end());
    std::vector<double> p(x.size());
    double sum = 0;
    for (size_t i = 0; i < x.size(); ++i) sum += p[i] = std::exp(x[i] - top);
    for (double& v : p) v /= sum;
    return p;
  };
  if (o.top_p < 1.0) {
    // Tokens in ascending order of probability; drop those whose cumulative probability stays
    // within 1 - top_p, always keeping the most likely one.
    std::vector<double> p = softmax(z);
    std::vector<int64_t> order(vocab);
    for (int64_t i = 0; i < vocab; ++i) order[i] = i;
    std::stable_sort(order.begin(), order.end(),
                     [&z](int64_t a, int64_t b) { return z[a] < z[b]; });
    double cumulative = 0;
    for (int64_t i = 0; i + 1 < vocab; ++i) {
      cumulative += p[order[i]];
      if (cumulative <= 1.0 - o.top_p) z[order[i]] = kRemoved;
    }
  }
  std::vector<double> p = softmax(z);
  const double u = uniform(rng);
  double cumulative = 0;
  int64_t last_kept = 0;
  for (int64_t i = 0; i < vocab; ++i) {
    if (p[i] <= 0) continue;
    last_kept = i;
    cumulative += p[i];
    if (u < cumulative) return i;
  }
  return last_kept;  // rounding left u above the total
}

// The entropy -sum p log p of each row of log-probabilities [rows, vocab], 0 log 0 taken as 0.
at::Tensor entropy_of_log_probs(const at::Tensor& log_probs) {
  return at::special_entr(log_probs.exp()).sum(-1);
}

bool is_eos(int64_t token, const std::vector<int64_t>& eos) {
  return std::find(eos.begin(), eos.end(), token) != eos.end();
}

// log_probs and entropies, when given, receive each new token's log-probability under the
// model's own (untempered, unfiltered) distribution and that distribution's entropy.
std::vector<std::vector<int64_t>> greedy_or_sample(HfModel& model,
                                                   const std::vector<std::vector<int64_t>>& prompts,
                                                   const GenerationOptions& o,
                                                   const std::vector<int64_t>& eos,
                                                   std::vector<std::vector<float>>* log_probs,
                                                   std::vector<std::vector<float>>* entropies) {
  KvCache cache;
  at::Tensor logits = prefill(model, prompts, cache, o).logits;
  std::mt19937_64 rng(o.seed);
  std::vector<std::vector<int64_t>> out(prompts.size());
  std::vector<bool> done(prompts.size(), false);
  // The prompts still decoded, one per cache row. Finished ones leave the batch once they are a
  // quarter of it, so short answers stop costing the steps of the longest one.
  std::vector<int64_t> active(prompts.size());
  std::iota(active.begin(), active.end(), 0);
  DecodeThreadGovernor governor;
  for (int64_t step = 0; step < o.max_new_tokens; ++step) {
    const auto rows = static_cast<int64_t>(active.size());
    // transformers picks from float32 logits.
    at::Tensor scores = logits.to(at::kFloat);
    std::vector<int64_t> next(rows);
    at::Tensor best = o.do_sample ? at::Tensor() : scores.argmax(-1).contiguous();
    for (int64_t r = 0; r < rows; ++r) {
      next[r] = o.do_sample ? sample_token(scores[r], o, rng) : best.data_ptr<int64_t>()[r];
    }
    at::Tensor chosen_log_probs;
    at::Tensor step_entropies;
    if (log_probs) {
      const at::Tensor all = at::log_softmax(scores, -1);
      chosen_log_probs =
          all.gather(1, at::tensor(next, at::kLong).view({rows, 1})).view({rows}).contiguous();
      if (entropies) step_entropies = entropy_of_log_probs(all).contiguous();
    }
    int64_t finished = 0;
    for (int64_t r = 0; r < rows; ++r) {
      const int64_t prompt = active[r];
      if (!done[prompt]) {
        out[prompt].push_back(next[r]);
        if (log_probs) (*log_probs)[prompt].push_back(chosen_log_probs.data_ptr<float>()[r]);
        if (entropies) (*entropies)[prompt].push_back(step_entropies.data_ptr<float>()[r]);
        if (is_eos(next[r], eos)) done[prompt] = true;
      }
      finished += done[prompt] ? 1 : 0;
    }
    if (finished == rows || step + 1 == o.max_new_tokens) break;
    if (4 * finished >= rows) {
      std::vector<int64_t> kept_rows;
      std::vector<int64_t> kept_prompts;
      std::vector<int64_t> kept_next;
      for (int64_t r = 0; r < rows; ++r) {
        if (done[active[r]]) continue;
        kept_rows.push_back(r);
        kept_prompts.push_back(active[r]);
        kept_next.push_back(next[r]);
      }
      cache.reorder(at::tensor(kept_rows, at::kLong));
      active = std::move(kept_prompts);
      next = std::move(kept_next);
    }
    const auto step_rows = static_cast<int64_t>(next.size());
    governor.begin_step();
    logits = model.decode_step(at::tensor(next, at::kLong).view({step_rows, 1}), {}, cache, 1)
                 .select(1, 0);
    governor.end_step(step_rows);
  }
  return out;
}

// take_along_dim over the beam dimension (dim 1), as transformers' _gather_beams.
at::Tensor gather_beams(const at::Tensor& t, at::Tensor index) {
  while (index.dim() < t.dim()) index = index.unsqueeze(-1);
  return at::take_along_dim(t, index, 1);
}

// transformers' vectorized beam search (generation/utils.py, _beam_search), step for step.
std::vector<std::vector<int64_t>> beam_search(HfModel& model,
                                              const std::vector<std::vector<int64_t>>& prompts,
                                              const GenerationOptions& o,
                                              const std::vector<int64_t>& eos) {
  const auto batch = static_cast<int64_t>(prompts.size());
  const int64_t beams = o.num_beams;
  KvCache cache;
  Prefill start = prefill(model, prompts, cache, o);
  at::Tensor expand = at::arange(batch).repeat_interleave(beams);
  cache.reorder(expand);
  at::Tensor logits = start.logits.index_select(0, expand);
  const int64_t vocab = logits.size(-1);

  const int64_t prompt_len = start.prompt_ids.size(1);
  const int64_t max_length = prompt_len + o.max_new_tokens;
  const int64_t keep = std::max<int64_t>(2, 1 + static_cast<int64_t>(eos.size())) * beams;
  at::Tensor top_beam_mask =
      at::cat({at::ones({beams}, at::kBool), at::zeros({keep - beams}, at::kBool)});
  const int64_t fill = eos.empty() ? 0 : eos.front();
  at::Tensor running = at::full({batch, beams, max_length}, fill, at::kLong);
  running.narrow(2, 0, prompt_len)
      .copy_(start.prompt_ids.unsqueeze(1).expand({batch, beams, prompt_len}));
  at::Tensor sequences = running.clone();
  at::Tensor running_scores = at::zeros({batch, beams}, at::kFloat);
  running_scores.narrow(1, 1, beams - 1).fill_(kBeamPenalty);
  at::Tensor beam_scores = at::full({batch, beams}, kBeamPenalty, at::kFloat);
  at::Tensor lengths = at::full({batch, beams}, prompt_len, at::kLong);
  at::Tensor finished = at::zeros({batch, beams}, at::kBool);
  at::Tensor improvable = at::ones({batch, 1}, at::kBool);
  at::Tensor eos_ids = at::tensor(eos.empty() ? std::vector<int64_t>{-1} : eos, at::kLong);
  at::Tensor batch_offset = at::arange(batch).view({batch, 1}) * beams;
  DecodeThreadGovernor governor;

  for (int64_t cur_len = prompt_len;;) {
    at::Tensor log_probs = at::log_softmax(logits.to(at::kFloat), -1).view({batch, beams, vocab});
    log_probs = (log_probs + running_scores.unsqueeze(-1)).reshape({batch, beams * vocab});
    auto [top_log_probs, top_indices] = at::topk(log_probs, keep);
    at::Tensor from_beam = top_indices.div(vocab, "floor");
    at::Tensor top_ids = top_indices.remainder(vocab);
    at::Tensor top_sequences = gather_beams(running, from_beam);
    top_sequences.select(2, cur_len).copy_(top_ids);
    at::Tensor from_row = from_beam + batch_offset;
    at::Tensor hits = at::isin(top_ids, eos_ids);
    if (cur_len + 1 >= max_length) hits.fill_(true);

    // The best num_beams unfinished candidates run on.
    at::Tensor running_log_probs = top_log_probs + hits.to(at::kFloat) * kBeamPenalty;
    at::Tensor next = std::get<1>(at::topk(running_log_probs, beams));
    running = gather_beams(top_sequences, next);
    running_scores = gather_beams(running_log_probs, next);
    at::Tensor next_rows = gather_beams(from_row, next);

    // Finished candidates among the top num_beams join the finished beams if they score better.
    at::Tensor just_finished = hits.logical_and(top_beam_mask.unsqueeze(0));
    at::Tensor scores =
        top_log_probs / std::pow(static_cast<double>(cur_len + 1 - prompt_len), o.length_penalty);
    if (o.early_stopping) {
      scores += finished.all(-1, /*keepdim=*/true).to(at::kFloat) * kBeamPenalty;
    }
    scores += improvable.logical_not().to(at::kFloat) * kBeamPenalty;
    scores += just_finished.logical_not().to(at::kFloat) * kBeamPenalty;
    at::Tensor merged_scores = at::cat({beam_scores, scores}, 1);
    at::Tensor best = std::get<1>(at::topk(merged_scores, beams));
    sequences = gather_beams(at::cat({sequences, top_sequences}, 1), best);
    beam_scores = gather_beams(merged_scores, best);
    lengths =
        gather_beams(at::cat({lengths, at::full({batch, keep}, cur_len + 1, at::kLong)}, 1), best);
    finished = gather_beams(at::cat({finished, just_finished}, 1), best);

    cache.reorder(next_rows.reshape({-1}));
    ++cur_len;
    // transformers' early_stopping=False heuristic: can the best running beam, at its current
    // length, still beat the worst finished one?
    at::Tensor best_possible =
        running_scores.narrow(1, 0, 1) /
        std::pow(static_cast<double>(cur_len - prompt_len), o.length_penalty);
    at::Tensor worst_finished = at::where(finished, std::get<0>(beam_scores.min(1, true)),
                                          at::scalar_tensor(kBeamPenalty, at::kFloat));
    improvable = improvable.logical_and((best_possible > worst_finished).any(-1, true));
    const bool open_beam = !(finished.all().item<bool>() && o.early_stopping);
    if (!improvable.any().item<bool>() || !open_beam || hits.all().item<bool>()) break;
    at::Tensor next_ids = running.select(2, cur_len - 1).reshape({batch * beams, 1});
    governor.begin_step();
    logits = model.decode_step(next_ids, {}, cache, 1).select(1, 0);
    governor.end_step(batch * beams);
  }

  std::vector<std::vector<int64_t>> out(batch);
  for (int64_t b = 0; b < batch; ++b) {
    const int64_t len = lengths[b][0].item<int64_t>();
    at::Tensor tokens = sequences[b][0].narrow(0, prompt_len, len - prompt_len).contiguous();
    out[b].assign(tokens.data_ptr<int64_t>(), tokens.data_ptr<int64_t>() + tokens.numel());
  }
  return out;
}

}  // namespace

std::vector<int64_t> default_eos_token_ids(const HfModel& model) {
  const std::filesystem::path generation = model.source() / "generation_config.json";
  if (std::filesystem::is_directory(model.source()) && std::filesystem::exists(generation)) {
    std::ifstream in(generation, std::ios::binary);
    try {
      nlohmann::json json = nlohmann::json::parse(in);
      std::vector<int64_t> ids = eos_ids_of(json);
      if (!ids.empty()) return ids;
    } catch (const nlohmann::json::exception& e) {
      throw FormatError(str(generation.string(), ": not valid JSON (", e.what(), ")"));
    }
  }
  return eos_ids_of(model.config().json());
}

namespace {

std::vector<int64_t> checked_eos_ids(HfModel& model,
                                     const std::vector<std::vector<int64_t>>& prompts,
                                     const GenerationOptions& options) {
  STUNT_CHECK_AS(NotImplementedError, model.supports_decoding(),
                 "generation is not implemented for ", model.architecture(),
                 "; supported: llama, mistral, qwen2, gpt2, t5");
  STUNT_CHECK(options.max_new_tokens >= 1, "max_new_tokens = ", options.max_new_tokens,
              "; generate at least 1 token");
  STUNT_CHECK(options.temperature > 0 && std::isfinite(options.temperature),
              "temperature = ", options.temperature,
              "; use a positive temperature (1 leaves logits unchanged)");
  STUNT_CHECK(options.top_k >= 0, "top_k = ", options.top_k, "; use 0 (off) or a positive k");
  STUNT_CHECK(options.top_p > 0 && options.top_p <= 1, "top_p = ", options.top_p,
              "; use a probability in (0, 1] (1: off)");
  STUNT_CHECK(options.num_beams >= 1, "num_beams = ", options.num_beams, "; use 1 or more");
  STUNT_CHECK(options.prefill_rows >= 0, "prefill_rows = ", options.prefill_rows,
              "; use 0 (one prefill of all prompts) or a positive group size");
  STUNT_CHECK(!(options.num_beams > 1 && options.do_sample),
              "beam sampling is not supported; use num_beams = 1 with sampling, or no sampling");
  for (size_t i = 0; i < prompts.size(); ++i) {
    STUNT_CHECK(!prompts[i].empty(), "prompt ", i, " is empty; a prompt needs at least one token");
  }
  return options.eos_token_id ? std::vector<int64_t>{*options.eos_token_id}
                              : default_eos_token_ids(model);
}

}  // namespace

std::vector<std::vector<int64_t>> generate(HfModel& model,
                                           const std::vector<std::vector<int64_t>>& prompts,
                                           const GenerationOptions& options) {
  c10::NoGradGuard no_grad;
  const std::vector<int64_t> eos = checked_eos_ids(model, prompts, options);
  if (prompts.empty()) return {};
  if (options.num_beams > 1) return beam_search(model, prompts, options, eos);
  return greedy_or_sample(model, prompts, options, eos, nullptr, nullptr);
}

std::vector<ScoredGeneration> generate_scored(HfModel& model,
                                              const std::vector<std::vector<int64_t>>& prompts,
                                              const GenerationOptions& options) {
  c10::NoGradGuard no_grad;
  const std::vector<int64_t> eos = checked_eos_ids(model, prompts, options);
  if (prompts.empty()) return {};
  std::vector<std::vector<int64_t>> tokens;
  std::vector<std::vector<float>> log_probs(prompts.size());
  std::vector<std::vector<float>> entropies(prompts.size());
  if (options.num_beams > 1) {
    tokens = beam_search(model, prompts, options, eos);
    log_probs = continuation_log_probs(model, prompts, tokens, &entropies);
  } else {
    tokens = greedy_or_sample(model, prompts, options, eos, &log_probs, &entropies);
  }
  std::vector<ScoredGeneration> out(prompts.size());
  for (size_t i = 0; i < prompts.size(); ++i) {
    out[i].tokens = std::move(tokens[i]);
    out[i].log_probs = std::move(log_probs[i]);
    out[i].entropies = std::move(entropies[i]);
  }
  return out;
}

std::vector<std::vector<float>> continuation_log_probs(
    HfModel& model, const std::vector<std::vector<int64_t>>& prompts,
    const std::vector<std::vector<int64_t>>& continuations,
    std::vector<std::vector<float>>* entropies) {
  c10::NoGradGuard no_grad;
  if (entropies) entropies->assign(prompts.size(), {});
  STUNT_CHECK(prompts.size() == continuations.size(), "continuation_log_probs: ", prompts.size(),
              " prompts but ", continuations.size(), " continuations");
  std::vector<std::vector<float>> out(prompts.size());
  // One pair at a time: the [length, vocab] logits of a long prompt are large.
  for (size_t i = 0; i < prompts.size(); ++i) {
    const std::vector<int64_t>& cont = continuations[i];
    if (cont.empty()) continue;
    Batch batch;
    int64_t first = 0;  // the position whose logits predict cont[0]
    if (model.is_encoder_decoder()) {
      batch.input_ids = at::tensor(prompts[i], at::kLong).view({1, -1});
      batch.attention_mask = at::ones_like(batch.input_ids);
      std::vector<int64_t> decoder = {model.decoder_start_token_id()};
      decoder.insert(decoder.end(), cont.begin(), cont.end() - 1);
      batch.decoder_input_ids = at::tensor(decoder, at::kLong).view({1, -1});
    } else {
      std::vector<int64_t> ids = prompts[i];
      ids.insert(ids.end(), cont.begin(), cont.end() - 1);
      batch.input_ids = at::tensor(ids, at::kLong).view({1, -1});
      batch.attention_mask = at::ones_like(batch.input_ids);
      first = static_cast<int64_t>(prompts[i].size()) - 1;
    }
    const at::Tensor logits =
        model.forward(batch).logits[0].narrow(0, first, static_cast<int64_t>(cont.size()));
    const at::Tensor all = at::log_softmax(logits.to(at::kFloat), -1);
    const at::Tensor picked =
        all.gather(1, at::tensor(cont, at::kLong).view({-1, 1})).view({-1}).contiguous();
    out[i].assign(picked.data_ptr<float>(), picked.data_ptr<float>() + picked.numel());
    if (entropies) {
      const at::Tensor h = entropy_of_log_probs(all).contiguous();
      (*entropies)[i].assign(h.data_ptr<float>(), h.data_ptr<float>() + h.numel());
    }
  }
  return out;
}

}  // namespace stunt::model
