#include "stunt/pseudolabel/labeler.h"

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <chrono>
#include <cmath>
#include <functional>
#include <numeric>
#include <set>
#include <unordered_set>

#include "detail/generation_filters.h"
#include "detail/label_checks.h"
#include "detail/output_folder.h"
#include "stunt/core/atomic_file.h"
#include "stunt/core/error.h"
#include "stunt/core/logging.h"
#include "stunt/core/progress.h"
#include "stunt/core/sha256.h"
#include "stunt/core/strings.h"
#include "stunt/io/dataset.h"
#include "stunt/io/safetensors.h"
#include "stunt/pseudolabel/label_set.h"

namespace stunt::pseudolabel {
namespace fs = std::filesystem;

LabelKind parse_label_kind(const std::string& name) {
  if (name == "generate") return LabelKind::Generate;
  if (name == "embed") return LabelKind::Embed;
  if (name == "classify") return LabelKind::Classify;
  if (name == "logits") return LabelKind::Logits;
  throw ValueError(
      str("--kind ", name, " is not a label kind; use generate, logits, embed or classify"));
}

const char* to_string(LabelKind kind) {
  switch (kind) {
    case LabelKind::Generate:
      return "generate";
    case LabelKind::Embed:
      return "embed";
    case LabelKind::Classify:
      return "classify";
    case LabelKind::Logits:
      return "logits";
  }
  return "?";
}

std::string model_content_hash(const fs::path& path) {
  if (fs::is_regular_file(path)) return sha256_file(path);
  STUNT_CHECK_AS(IoError, fs::is_directory(path), path.string(),
                 ": no model here (expected a folder or a file)");
  std::vector<fs::path> files;
  for (const auto& entry : fs::recursive_directory_iterator(path)) {
    if (!entry.is_regular_file()) continue;
    const fs::path relative = fs::relative(entry.path(), path);
    if (relative.filename().string().rfind('.', 0) == 0) continue;
    files.push_back(relative);
  }
  std::sort(files.begin(), files.end());
  Sha256 hash;
  for (const fs::path& f : files) {
    hash.update(f.generic_string());
    hash.update("\n");
    hash.update(sha256_file(path / f));
    hash.update("\n");
  }
  return hash.hex_digest();
}

namespace {

using detail::apply_stop_strings;
using detail::check_label_job;
using detail::generates;
using detail::open_output;
using detail::repeated_trigram_share;
using detail::rouge_l;
using detail::word_error_rate;

/// One item on its way to a shard.
struct PendingItem {
  CorpusItem item;
  std::vector<int64_t> ids;
  bool truncated = false;
};

/// Settings that change the labels: a resumed job must have the same.
nlohmann::json settings_of(const LabelJob& job, CorpusFormat format, int64_t max_input_tokens,
                           TooLong too_long) {
  const LabelOptions& o = job.options;
  nlohmann::json s = {{"template", job.corpus_options.prompt_template},
                      {"format", to_string(format)},
                      {"id_field", job.corpus_options.id_field},
                      {"reference_field", job.corpus_options.reference_field},
                      {"batch_size", o.batch_size},
                      {"max_input_tokens", max_input_tokens},
                      {"too_long", too_long == TooLong::Skip ? "skip" : "truncate"},
                      {"deduplicate", o.deduplicate},
                      {"add_special_tokens", o.add_special_tokens}};
  // Folders written before the packed kernels existed hold no key: they ran the reference.
  if (o.kernels != "reference") s["kernels"] = o.kernels;
  if (o.min_entropy) s["min_entropy"] = *o.min_entropy;
  if (o.max_entropy) s["max_entropy"] = *o.max_entropy;
  if (!job.corpus_options.stratum_field.empty()) {
    s["stratum_field"] = job.corpus_options.stratum_field;
    s["per_stratum"] = o.per_stratum;
  }
  if (o.kind == LabelKind::Logits) {
    s["logits_top_k"] = o.logits_top_k;
    s["logits_of"] = o.logits_of_generation ? "generation" : "input";
    // Folders written before --logits-temperature existed hold no key: they stored T = 1.
    if (o.logits_temperature != 1.0) s["logits_temperature"] = o.logits_temperature;
  }
  if (o.kind == LabelKind::Generate || (o.kind == LabelKind::Logits && o.logits_of_generation)) {
    const model::GenerationOptions& g = o.generation;
    s["generation"] = {
        {"max_new_tokens", g.max_new_tokens},
        {"do_sample", g.do_sample},
        {"temperature", g.temperature},
        {"top_k", g.top_k},
        {"top_p", g.top_p},
        {"seed", g.seed},
        {"num_beams", g.num_beams},
        {"length_penalty", g.length_penalty},
        {"early_stopping", g.early_stopping},
        {"eos_token_id", g.eos_token_id ? nlohmann::json(*g.eos_token_id) : nlohmann::json()}};
    // Folders written before --prefill-batch-size existed hold no key: they prefilled each batch
    // at once.
    if (g.prefill_rows > 0) s["generation"]["prefill_rows"] = g.prefill_rows;
    s["stop_strings"] = o.stop_strings;
    s["min_mean_log_prob"] =
        o.min_mean_log_prob ? nlohmann::json(*o.min_mean_log_prob) : nlohmann::json();
    s["min_new_tokens"] = o.min_new_tokens;
    s["min_rouge_l"] = o.min_rouge_l ? nlohmann::json(*o.min_rouge_l) : nlohmann::json();
    s["max_wer"] = o.max_wer ? nlohmann::json(*o.max_wer) : nlohmann::json();
    s["max_repeated_trigrams"] =
        o.max_repeated_trigrams ? nlohmann::json(*o.max_repeated_trigrams) : nlohmann::json();
  }
  return s;
}

/// Right-padded [rows, len] ids and mask for an encoder.
std::pair<at::Tensor, at::Tensor> pad_right(const std::vector<const PendingItem*>& batch,
                                            int64_t pad_id) {
  int64_t len = 0;
  for (const PendingItem* p : batch) len = std::max<int64_t>(len, p->ids.size());
  const auto rows = static_cast<int64_t>(batch.size());
  at::Tensor ids = at::full({rows, len}, pad_id, at::kLong);
  at::Tensor mask = at::zeros({rows, len}, at::kLong);
  for (int64_t r = 0; r < rows; ++r) {
    const auto n = static_cast<int64_t>(batch[r]->ids.size());
    ids[r].narrow(0, 0, n).copy_(at::tensor(batch[r]->ids, at::kLong));
    mask[r].narrow(0, 0, n).fill_(1);
  }
  return {ids, mask};
}

class ShardLabeler {
 public:
  ShardLabeler(model::HfModel& teacher, const io::Tokenizer& tokenizer, const LabelJob& job)
      : teacher_(teacher), tokenizer_(tokenizer), job_(job), options_(job.options) {
    if (options_.kind == LabelKind::Embed) {
      pooling_ = model::SentencePooling::from_folder(job.teacher_path);
    }
    pad_id_ = tokenizer.pad_id().value_or(0);
    if (options_.kind == LabelKind::Classify) {
      const nlohmann::json& config = teacher.config().json();
      if (config.contains("id2label") && config["id2label"].is_object()) {
        for (const auto& [key, value] : config["id2label"].items()) {
          if (value.is_string()) label_names_[std::stoll(key)] = value.get<std::string>();
        }
      }
    }
  }

  /// Labels one shard's kept items (in input order) and writes its files; fills `entry`.
  /// `labeled(n, tokens)` follows each batch of n items, for the progress bar: tokens are the
  /// new tokens generated (generate) or the input tokens read (the other kinds).
  void run(const std::vector<PendingItem>& items, ShardEntry& entry, int64_t& new_tokens,
           const std::function<void(int64_t, int64_t)>& labeled) {
    std::vector<size_t> order(items.size());
    std::iota(order.begin(), order.end(), 0);
    // Grouped by length (stable, so the grouping depends only on the shard's items).
    std::stable_sort(order.begin(), order.end(),
                     [&](size_t a, size_t b) { return items[a].ids.size() < items[b].ids.size(); });
    std::vector<nlohmann::json> records(items.size());
    std::vector<bool> keep(items.size(), true);
    // Each item's tensors: one row (embed, classify) or one row per position (logits).
    std::vector<std::map<std::string, at::Tensor>> rows(items.size());
    const auto batch_size = static_cast<size_t>(options_.batch_size);
    for (size_t start = 0; start < order.size(); start += batch_size) {
      std::vector<const PendingItem*> batch;
      std::vector<size_t> slots;
      for (size_t k = start; k < std::min(order.size(), start + batch_size); ++k) {
        batch.push_back(&items[order[k]]);
        slots.push_back(order[k]);
      }
      const int64_t generated_before = new_tokens;
      label_batch(batch, slots, records, keep, rows, entry, new_tokens);
      int64_t tokens = new_tokens - generated_before;
      if (options_.kind != LabelKind::Generate) {
        tokens = 0;
        for (const PendingItem* p : batch) tokens += static_cast<int64_t>(p->ids.size());
      }
      labeled(static_cast<int64_t>(batch.size()), tokens);
    }
    std::string jsonl;
    std::map<std::string, std::vector<at::Tensor>> kept_rows;
    int64_t offset = 0;
    for (size_t i = 0; i < items.size(); ++i) {
      if (!keep[i]) continue;
      records[i]["index"] = items[i].item.index;
      records[i]["id"] = items[i].item.id;
      if (items[i].item.reference) records[i]["reference"] = *items[i].item.reference;
      if (items[i].truncated) records[i]["truncated"] = true;
      if (options_.kind == LabelKind::Logits) {
        const int64_t positions = rows[i].at("top_ids").size(0);
        records[i]["offset"] = offset;
        records[i]["positions"] = positions;
        offset += positions;
      }
      jsonl += records[i].dump() + "\n";
      for (const auto& [name, t] : rows[i]) kept_rows[name].push_back(t);
    }
    entry.labeled = static_cast<int64_t>(std::count(keep.begin(), keep.end(), true));
    const std::string stem = shard_stem(entry.index);
    const fs::path jsonl_path = job_.output / (stem + ".jsonl");
    write_file_atomic(jsonl_path, jsonl);
    entry.files[jsonl_path.filename().string()] = sha256_file(jsonl_path);
    if (options_.kind != LabelKind::Generate) {
      std::vector<io::NamedTensor> tensors;
      for (const auto& [name, dtype] : tensor_names()) {
        const auto found = kept_rows.find(name);
        tensors.emplace_back(name, found == kept_rows.end()
                                       ? at::zeros({0, width_}, at::TensorOptions().dtype(dtype))
                                       : at::cat(found->second));
      }
      const fs::path tensor_path = job_.output / (stem + ".safetensors");
      io::save_safetensors(tensor_path, tensors);
      entry.files[tensor_path.filename().string()] = sha256_file(tensor_path);
    }
  }

 private:
  /// The tensors a shard of this kind holds, with their dtypes.
  std::vector<std::pair<std::string, at::ScalarType>> tensor_names() const {
    switch (options_.kind) {
      case LabelKind::Embed:
        return {{"embeddings", at::kFloat}};
      case LabelKind::Classify:
        return {{"probabilities", at::kFloat}};
      case LabelKind::Logits:
        return {{"top_log_probs", at::kHalf}, {"top_ids", at::kInt}};
      case LabelKind::Generate:
        break;
    }
    return {};
  }

  /// The teacher's top-k log-probabilities for each token of `tokens` after `prompt` (causal
  /// LM: prompt and tokens in one sequence; T5: prompt encoded, tokens decoded), teacher-forced.
  std::map<std::string, at::Tensor> top_log_probs(const std::vector<int64_t>& prompt,
                                                  const std::vector<int64_t>& tokens) {
    model::Batch batch;
    int64_t first = 0;
    if (teacher_.is_encoder_decoder()) {
      batch.input_ids = at::tensor(prompt, at::kLong).view({1, -1});
      std::vector<int64_t> decoder = {teacher_.decoder_start_token_id()};
      decoder.insert(decoder.end(), tokens.begin(), tokens.end() - 1);
      batch.decoder_input_ids = at::tensor(decoder, at::kLong).view({1, -1});
    } else {
      std::vector<int64_t> ids = prompt;
      ids.insert(ids.end(), tokens.begin(), tokens.end() - 1);
      batch.input_ids = at::tensor(ids, at::kLong).view({1, -1});
      first = static_cast<int64_t>(prompt.size()) - 1;
    }
    batch.attention_mask = at::ones_like(batch.input_ids);
    const at::Tensor logits =
        teacher_.forward(batch).logits[0].narrow(0, first, static_cast<int64_t>(tokens.size()));
    return top_k_of(logits);
  }

  std::map<std::string, at::Tensor> top_k_of(const at::Tensor& logits) {
    const int64_t k = std::min<int64_t>(options_.logits_top_k, logits.size(-1));
    auto [values, indices] =
        at::topk(at::log_softmax(logits.to(at::kFloat) / options_.logits_temperature, -1), k);
    width_ = k;
    return {{"top_log_probs", values.to(at::kHalf).contiguous()},
            {"top_ids", indices.to(at::kInt).contiguous()}};
  }

  void label_batch(const std::vector<const PendingItem*>& batch, const std::vector<size_t>& slots,
                   std::vector<nlohmann::json>& records, std::vector<bool>& keep,
                   std::vector<std::map<std::string, at::Tensor>>& rows, ShardEntry& entry,
                   int64_t& new_tokens) {
    c10::NoGradGuard no_grad;
    if (options_.kind == LabelKind::Logits && !options_.logits_of_generation) {
      // Each position's distribution over the item's next token: rows t = 0 .. n-2 predict
      // tokens[t + 1].
      auto [ids, mask] = pad_right(batch, pad_id_);
      model::Batch inputs;
      inputs.input_ids = ids;
      inputs.attention_mask = mask;
      const at::Tensor logits = teacher_.forward(inputs).logits;
      for (size_t b = 0; b < batch.size(); ++b) {
        const auto n = static_cast<int64_t>(batch[b]->ids.size());
        rows[slots[b]] = top_k_of(logits[static_cast<int64_t>(b)].narrow(0, 0, n - 1));
        records[slots[b]] = {{"tokens", batch[b]->ids}};
      }
      return;
    }
    if (options_.kind == LabelKind::Generate || options_.kind == LabelKind::Logits) {
      std::vector<std::vector<int64_t>> prompts;
      for (const PendingItem* p : batch) prompts.push_back(p->ids);
      std::vector<model::ScoredGeneration> out =
          model::generate_scored(teacher_, prompts, options_.generation);
      for (size_t b = 0; b < batch.size(); ++b) {
        model::ScoredGeneration& g = out[b];
        std::string text;
        apply_stop_strings(tokenizer_, options_.stop_strings, g, text);
        const double mean = mean_of(g.log_probs);
        const double mean_entropy = mean_of(g.entropies);
        new_tokens += static_cast<int64_t>(g.tokens.size());
        if (static_cast<int64_t>(g.tokens.size()) < options_.min_new_tokens) {
          keep[slots[b]] = false;
          entry.dropped["filtered:min_new_tokens"] += 1;
          continue;
        }
        if (options_.min_mean_log_prob && mean < *options_.min_mean_log_prob) {
          keep[slots[b]] = false;
          entry.dropped["filtered:min_mean_log_prob"] += 1;
          continue;
        }
        if (!entropy_selected(mean_entropy, entry)) {
          keep[slots[b]] = false;
          continue;
        }
        const double repeated = repeated_trigram_share(g.tokens);
        if (options_.max_repeated_trigrams && repeated > *options_.max_repeated_trigrams) {
          keep[slots[b]] = false;
          entry.dropped["filtered:max_repeated_trigrams"] += 1;
          continue;
        }
        std::optional<double> rouge;
        if (batch[b]->item.reference) rouge = rouge_l(text, *batch[b]->item.reference);
        if (options_.min_rouge_l && rouge && *rouge < *options_.min_rouge_l) {
          keep[slots[b]] = false;
          entry.dropped["filtered:min_rouge_l"] += 1;
          continue;
        }
        std::optional<double> wer;
        if (batch[b]->item.reference) wer = word_error_rate(text, *batch[b]->item.reference);
        if (options_.max_wer && wer && *wer > *options_.max_wer) {
          keep[slots[b]] = false;
          entry.dropped["filtered:max_wer"] += 1;
          continue;
        }
        records[slots[b]] = {{"generation", text},
                             {"tokens", g.tokens},
                             {"token_log_probs", g.log_probs},
                             {"mean_log_prob", mean},
                             {"mean_entropy", mean_entropy},
                             {"repeated_trigrams", repeated},
                             {"prompt_tokens", batch[b]->ids.size()}};
        if (rouge) records[slots[b]]["rouge_l"] = *rouge;
        if (wer) records[slots[b]]["wer"] = *wer;
        if (options_.kind == LabelKind::Logits) {
          if (g.tokens.empty()) {
            keep[slots[b]] = false;
            entry.dropped["filtered:empty_generation"] += 1;
            continue;
          }
          rows[slots[b]] = top_log_probs(batch[b]->ids, g.tokens);
        }
      }
      return;
    }
    auto [ids, mask] = pad_right(batch, pad_id_);
    model::Batch inputs;
    inputs.input_ids = ids;
    inputs.attention_mask = mask;
    const model::Output out = teacher_.forward(inputs);
    at::Tensor result;
    if (options_.kind == LabelKind::Embed) {
      STUNT_CHECK_AS(ValueError, out.hidden.defined() && out.hidden.dim() == 3,
                     teacher_.architecture(),
                     " gives no hidden states to pool; --kind embed needs "
                     "an encoder (a sentence-transformers folder)");
      result = (*pooling_)(out.hidden.to(at::kFloat), mask);
    } else {
      result = at::softmax(out.logits.to(at::kFloat), -1);
    }
    width_ = result.size(1);
    const std::string name = options_.kind == LabelKind::Embed ? "embeddings" : "probabilities";
    for (size_t b = 0; b < batch.size(); ++b) {
      rows[slots[b]] = {{name, result[static_cast<int64_t>(b)].unsqueeze(0).contiguous()}};
      nlohmann::json record = {{"input_tokens", batch[b]->ids.size()}};
      if (options_.kind == LabelKind::Classify) {
        const double entropy =
            at::special_entr(result[static_cast<int64_t>(b)].to(at::kDouble)).sum().item<double>();
        if (!entropy_selected(entropy, entry)) {
          keep[slots[b]] = false;
          rows[slots[b]].clear();
          continue;
        }
        record["entropy"] = entropy;
        const int64_t best = result[static_cast<int64_t>(b)].argmax().item<int64_t>();
        record["label"] = best;
        const auto name = label_names_.find(best);
        if (name != label_names_.end()) record["label_name"] = name->second;
      }
      records[slots[b]] = std::move(record);
    }
  }

  // Whether an item's teacher entropy lies within the --min-entropy / --max-entropy bounds;
  // counts the dropped ones.
  bool entropy_selected(double entropy, ShardEntry& entry) const {
    if (options_.min_entropy && entropy < *options_.min_entropy) {
      entry.dropped["filtered:min_entropy"] += 1;
      return false;
    }
    if (options_.max_entropy && entropy > *options_.max_entropy) {
      entry.dropped["filtered:max_entropy"] += 1;
      return false;
    }
    return true;
  }

  static double mean_of(const std::vector<float>& values) {
    double sum = 0;
    for (float v : values) sum += v;
    return values.empty() ? 0.0 : sum / static_cast<double>(values.size());
  }

  model::HfModel& teacher_;
  const io::Tokenizer& tokenizer_;
  const LabelJob& job_;
  const LabelOptions& options_;
  std::optional<model::SentencePooling> pooling_;
  std::map<int64_t, std::string> label_names_;
  int64_t pad_id_ = 0;
  int64_t width_ = 0;
};

}  // namespace

LabelSummary label_corpus(model::HfModel& teacher, const io::Tokenizer& tokenizer,
                          const LabelJob& job) {
  const LabelOptions& o = job.options;
  check_label_job(teacher, job);
  const TooLong too_long = o.too_long.value_or(generates(o) ? TooLong::Skip : TooLong::Truncate);
  int64_t max_input = o.max_input_tokens;
  // Logits of the input need two tokens: one position predicting the next.
  const int64_t min_input = o.kind == LabelKind::Logits && !o.logits_of_generation ? 2 : 1;
  const int64_t positions = teacher.config().integer("max_position_embeddings", int64_t{0});
  if (max_input == 0) {
    max_input = positions > 0 ? positions : int64_t{1} << 40;
    if (generates(o) && positions > 0 && !teacher.is_encoder_decoder()) {
      max_input = std::max<int64_t>(1, positions - o.generation.max_new_tokens);
    }
  }
  // The corpus is read once first: every record is checked (a bad line is named before anything
  // is written) and counted.
  CorpusReader probe(job.corpus, job.corpus_options);
  int64_t total_items = 0;
  while (probe.next()) ++total_items;
  STUNT_CHECK_AS(ValueError, total_items > 0, job.corpus.string(),
                 ": the corpus has no items (every line is blank)");

  Manifest fresh;
  fresh.kind = to_string(o.kind);
  log::info("hashing the teacher ", job.teacher_path.string());
  fresh.teacher = {{"path", job.teacher_path.string()},
                   {"sha256", model_content_hash(job.teacher_path)}};
  fresh.input = {{"path", job.corpus.string()},
                 {"bytes", static_cast<int64_t>(fs::file_size(job.corpus))},
                 {"sha256", sha256_file(job.corpus)},
                 {"items", total_items}};
  fresh.settings = settings_of(job, probe.format(), max_input, too_long);
  fresh.shard_size = o.shard_size;
  fresh.part_index = o.part_index;
  fresh.part_count = o.num_parts;
  Manifest manifest = open_output(job, fresh);

  LabelSummary summary;
  summary.items = total_items;
  summary.shards = (total_items + o.shard_size - 1) / o.shard_size;
  summary.shards_resumed = static_cast<int64_t>(manifest.shards.size());
  int64_t part_shards = 0;  // the shards this part labels
  for (int64_t shard = o.part_index; shard < summary.shards; shard += o.num_parts) ++part_shards;
  if (manifest.complete) {
    log::info(job.output.string(), ": the job is already complete (", manifest.labeled(),
              " items labeled)");
    summary.shards_resumed = part_shards;
    summary.labeled = manifest.labeled();
    summary.dropped = manifest.dropped();
    for (const ShardEntry& s : manifest.shards) summary.truncated += s.truncated;
    return summary;
  }
  if (summary.shards_resumed > 0) {
    log::info("resuming after ", summary.shards_resumed, " of ", part_shards, " finished shards");
  }

  ShardLabeler labeler(teacher, tokenizer, job);
  CorpusReader reader(job.corpus, job.corpus_options);
  std::unordered_set<std::string> seen;
  std::map<std::string, int64_t> stratum_counts;
  ProgressOptions progress_options;
  progress_options.unit = "items";
  progress_options.second_unit = o.kind == LabelKind::Generate ? "new tokens" : "tokens";
  int64_t part_items = 0;
  for (int64_t shard = o.part_index; shard < summary.shards; shard += o.num_parts) {
    part_items += std::min(total_items, (shard + 1) * o.shard_size) - shard * o.shard_size;
  }
  Progress progress("label", part_items, progress_options);
  const auto start = std::chrono::steady_clock::now();
  for (int64_t shard = 0; shard < summary.shards; ++shard) {
    const bool mine = shard % o.num_parts == o.part_index;
    // Shards of other parts are read (for --dedup) and passed over like finished ones.
    const bool finished = !mine || shard / o.num_parts < summary.shards_resumed;
    ShardEntry entry;
    entry.index = shard;
    entry.first_item = shard * o.shard_size;
    entry.end_item = std::min(total_items, (shard + 1) * o.shard_size);
    std::vector<PendingItem> pending;
    for (int64_t i = entry.first_item; i < entry.end_item; ++i) {
      std::optional<CorpusItem> item = reader.next();
      STUNT_CHECK_AS(IoError, item.has_value(), job.corpus.string(), ": ended before item ", i,
                     "; did it change while being labeled?");
      if (o.deduplicate) {
        const std::string digest = sha256_hex(item->text).substr(0, 32);
        if (!seen.insert(digest).second) {
          entry.dropped["duplicate"] += 1;
          continue;
        }
      }
      if (o.per_stratum > 0 && item->stratum) {
        // Counted over every item read, whichever part or run labels it.
        if (++stratum_counts[*item->stratum] > o.per_stratum) {
          entry.dropped["not_selected"] += 1;
          continue;
        }
      }
      if (finished) continue;
      PendingItem p;
      p.ids = tokenizer.encode(item->text, o.add_special_tokens);
      if (static_cast<int64_t>(p.ids.size()) > max_input) {
        if (too_long == TooLong::Skip) {
          entry.dropped["too_long"] += 1;
          continue;
        }
        // As transformers' truncation: the text's tokens are cut, [CLS] ... [SEP] kept.
        p.ids = io::encode_truncated(tokenizer, item->text, max_input, o.add_special_tokens);
        p.truncated = true;
        entry.truncated += 1;
      }
      if (static_cast<int64_t>(p.ids.size()) < min_input) {
        entry.dropped["too_short"] += 1;
        continue;
      }
      p.item = std::move(*item);
      pending.push_back(std::move(p));
    }
    if (finished) {
      if (mine) progress.advance(entry.end_item - entry.first_item);
      continue;
    }
    // The bar moves with every batch; items dropped before labeling count when the shard ends.
    int64_t shown = 0;
    labeler.run(pending, entry, summary.new_tokens, [&](int64_t items, int64_t tokens) {
      shown += items;
      progress.count(tokens);
      progress.advance(items);
    });
    manifest.shards.push_back(entry);
    manifest.write(job.output);
    summary.items_this_run += entry.end_item - entry.first_item;
    progress.advance(entry.end_item - entry.first_item - shown);
  }
  progress.finish();
  summary.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (!manifest.complete) {
    manifest.complete = true;
    manifest.write(job.output);
  }
  summary.labeled = manifest.labeled();
  summary.dropped = manifest.dropped();
  for (const ShardEntry& s : manifest.shards) summary.truncated += s.truncated;
  return summary;
}

}  // namespace stunt::pseudolabel
