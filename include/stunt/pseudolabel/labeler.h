#pragma once
/// `compress label`: a teacher labels an unlabeled corpus offline, shard by shard, into a label
/// folder (label_set.h). Rerunning the same job continues after the last finished shard; a job
/// whose teacher, input or settings differ from the folder's manifest is refused, naming what
/// differs.

#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "stunt/io/tokenizer.h"
#include "stunt/model/generate.h"
#include "stunt/model/hf_model.h"
#include "stunt/pseudolabel/corpus.h"

namespace stunt::pseudolabel {

enum class LabelKind {
  /// A continuation per item (causal LM or T5) with each token's log-probability.
  Generate,
  /// A pooled sentence embedding per item (sentence-transformers pooling of the teacher folder).
  Embed,
  /// Class probabilities from a sequence-classification head.
  Classify,
  /// The teacher's top-k next-token log-probabilities at each position (float16, with int32
  /// token ids): of the item's own tokens (causal LMs), or of the teacher's generation (causal
  /// LMs and T5), the form token-level distillation reads.
  Logits,
};
LabelKind parse_label_kind(const std::string& name);
const char* to_string(LabelKind kind);

/// What to do with an item longer than max_input_tokens.
enum class TooLong { Truncate, Skip };

struct LabelOptions {
  LabelKind kind = LabelKind::Generate;
  /// Input items per shard (the unit of writing and of resuming).
  int64_t shard_size = 1000;
  /// Items per forward / generate call. Items are grouped by length within a shard.
  int64_t batch_size = 8;
  /// Tokens of an item's input at most; 0: the teacher's max_position_embeddings (less the new
  /// tokens when generating).
  int64_t max_input_tokens = 0;
  /// Unset: truncate for embed and classify (as transformers' truncation=True), skip for
  /// generate (a cut prompt loses its instruction).
  std::optional<TooLong> too_long;
  /// Drop an item whose input text equals an earlier item's (first occurrence kept).
  bool deduplicate = false;
  bool add_special_tokens = true;
  model::GenerationOptions generation;
  /// Generate: the text ends before the first of these; tokens and log-probabilities are cut
  /// to the shortest prefix that contains it.
  std::vector<std::string> stop_strings;
  /// Generate: drop items whose mean token log-probability is below this (low confidence).
  std::optional<double> min_mean_log_prob;
  /// Generate: drop items with fewer generated tokens than this (after stop strings).
  int64_t min_new_tokens = 0;
  /// Generate with a reference: drop items whose ROUGE-L F1 against it is below this
  /// (rouge_score's tokens: lowercased runs of letters and digits). Every item with a reference
  /// records its `rouge_l`.
  std::optional<double> min_rouge_l;
  /// Generate with a reference: drop items whose word error rate against it is above this
  /// (distil-whisper's filter; the same words as ROUGE-L). Every such item records its `wer`.
  std::optional<double> max_wer;
  /// Selection by the teacher's entropy (nats): generate records each item's `mean_entropy` (of
  /// the next-token distributions it chose from), classify its class distribution's `entropy`.
  /// Items below min_entropy are the ones the teacher finds easy (the least informative); items
  /// above max_entropy are the ones it is unsure of. Either bound drops what is outside it.
  std::optional<double> min_entropy;
  std::optional<double> max_entropy;
  /// Generate: drop items whose generated tokens repeat themselves more than this: the share of
  /// their 3-grams that occurred before in the same generation (0: all distinct).
  std::optional<double> max_repeated_trigrams;
  /// With CorpusOptions::stratum_field: keep the first `per_stratum` items of each stratum
  /// value, in input order (later ones are dropped as "not_selected"); 0: keep all.
  int64_t per_stratum = 0;
  /// Logits: log-probabilities kept per position, and whether they are of the teacher's
  /// generation (generated as `generation` says) instead of the item's tokens.
  int64_t logits_top_k = 20;
  bool logits_of_generation = false;
  /// Logits: the top-k of log softmax(logits / T). Labels stored at the temperature the student
  /// will be distilled at give the exact mass of the tempered tail (distill/logit_distillation.h).
  double logits_temperature = 1.0;
  /// Start over: remove the folder's labels first (a part: its own).
  bool restart = false;
  /// Split the job: this process labels the shards s with s % num_parts == part_index into
  /// its own part manifest; merge_label_parts joins the parts. The labels are the same whatever
  /// the split (every part reads the whole corpus, so --dedup sees every earlier item).
  int64_t num_parts = 1;
  int64_t part_index = 0;
  /// How the teacher's quantized layers run, as the caller loaded it ("fast": packed kernels,
  /// "reference": decompressed; quant/quantized_kernels.h). Recorded in the manifest, since the
  /// two round differently: a resumed job must not mix them.
  std::string kernels = "fast";
};

struct LabelJob {
  std::filesystem::path teacher_path;
  std::filesystem::path corpus;
  CorpusOptions corpus_options;
  std::filesystem::path output;
  LabelOptions options;
};

struct LabelSummary {
  int64_t shards = 0;
  /// Shards found finished in the folder when the job started.
  int64_t shards_resumed = 0;
  int64_t items = 0;
  int64_t labeled = 0;
  std::map<std::string, int64_t> dropped;
  int64_t truncated = 0;
  int64_t new_tokens = 0;
  /// Wall time of this run's labeling (resumed shards excluded).
  double seconds = 0;
  int64_t items_this_run = 0;
};

/// SHA-256 of a model: a file's bytes, or for a folder, of each file's relative name and hash
/// in name order (hidden files left out).
std::string model_content_hash(const std::filesystem::path& path);

/// Labels the job's corpus with `teacher`. Throws ValueError (bad settings, a folder of other
/// labels, a changed job) before anything is written.
LabelSummary label_corpus(model::HfModel& teacher, const io::Tokenizer& tokenizer,
                          const LabelJob& job);

}  // namespace stunt::pseudolabel
