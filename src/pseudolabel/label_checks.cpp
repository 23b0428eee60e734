#include "detail/label_checks.h"

#include <filesystem>
#include <string>

#include "stunt/core/error.h"

namespace stunt::pseudolabel::detail {
namespace fs = std::filesystem;

namespace {

/// Refuses a teacher that cannot produce the kind, before anything is read or written.
void check_teacher(model::HfModel& teacher, const LabelJob& job) {
  const std::string arch = teacher.architecture();
  const nlohmann::json& config = teacher.config().json();
  std::string architectures;
  if (config.contains("architectures") && config["architectures"].is_array()) {
    for (const auto& a : config["architectures"]) architectures += a.get<std::string>() + " ";
  }
  STUNT_CHECK_AS(ValueError,
                 job.options.kind == LabelKind::Logits || job.options.logits_temperature == 1.0,
                 "--logits-temperature ", job.options.logits_temperature,
                 " tempers the log-probabilities of --kind logits; drop it for other kinds (a "
                 "generation's sampling temperature is --temperature)");
  switch (job.options.kind) {
    case LabelKind::Logits:
      STUNT_CHECK_AS(ValueError, teacher.supports_decoding(), job.teacher_path.string(), " (", arch,
                     ") has no language-model head; --kind logits needs a causal LM or T5");
      STUNT_CHECK_AS(ValueError, job.options.logits_of_generation || !teacher.is_encoder_decoder(),
                     job.teacher_path.string(), " (", arch,
                     ") is an encoder-decoder: its decoder's logits are of a generation; add "
                     "--logits-of generation");
      STUNT_CHECK_AS(ValueError, job.options.logits_top_k >= 1, "--logits-top-k ",
                     job.options.logits_top_k, "; keep at least 1 log-probability per position");
      STUNT_CHECK_AS(ValueError, job.options.logits_temperature > 0.0, "--logits-temperature ",
                     job.options.logits_temperature,
                     "; use a positive temperature (1: the teacher's distribution as it is; the "
                     "distillation recipe's temperature: its tempered one)");
      break;
    case LabelKind::Generate:
      STUNT_CHECK_AS(ValueError, teacher.supports_decoding(), job.teacher_path.string(), " (", arch,
                     ") cannot generate; --kind generate needs a causal LM (Llama, "
                     "Mistral, Qwen2, GPT-2) or T5");
      break;
    case LabelKind::Embed:
      STUNT_CHECK_AS(ValueError, fs::is_directory(job.teacher_path) && !teacher.supports_decoding(),
                     job.teacher_path.string(), " (", arch,
                     ") is not a sentence encoder; --kind embed needs an encoder folder "
                     "(sentence-transformers, e.g. all-MiniLM-L6-v2)");
      break;
    case LabelKind::Classify:
      STUNT_CHECK_AS(ValueError,
                     architectures.find("ForSequenceClassification") != std::string::npos,
                     job.teacher_path.string(), " (", architectures.empty() ? arch : architectures,
                     ") has no sequence-classification head; --kind classify needs one "
                     "(e.g. BertForSequenceClassification)");
      break;
  }
}

}  // namespace

bool generates(const LabelOptions& o) {
  return o.kind == LabelKind::Generate || (o.kind == LabelKind::Logits && o.logits_of_generation);
}

void check_label_job(model::HfModel& teacher, const LabelJob& job) {
  const LabelOptions& o = job.options;
  STUNT_CHECK_AS(ValueError, o.shard_size >= 1, "--shard-size ", o.shard_size,
                 "; a shard holds at least 1 item");
  STUNT_CHECK_AS(ValueError, o.batch_size >= 1, "--batch-size ", o.batch_size,
                 "; a batch holds at least 1 item");
  STUNT_CHECK_AS(ValueError, o.num_parts >= 1 && o.part_index >= 0 && o.part_index < o.num_parts,
                 "part ", o.part_index, " of ", o.num_parts,
                 " does not exist; --shard-index runs from 0 to --num-shards - 1");
  STUNT_CHECK_AS(ValueError, o.per_stratum >= 0, "--per-stratum ", o.per_stratum,
                 "; use 0 (keep all) or a positive count");
  STUNT_CHECK_AS(ValueError, (o.per_stratum > 0) == !job.corpus_options.stratum_field.empty(),
                 "--stratify-by and --per-stratum go together: name the JSONL field whose value "
                 "is the stratum and how many items of each to keep");
  STUNT_CHECK_AS(ValueError,
                 (!o.min_rouge_l && !o.max_wer && !o.max_repeated_trigrams) || generates(o),
                 "--min-rouge-l, --max-wer and --max-repeated-trigrams judge generations; they "
                 "need --kind generate");
  STUNT_CHECK_AS(ValueError,
                 (!o.min_rouge_l && !o.max_wer) || !job.corpus_options.reference_field.empty(),
                 "--min-rouge-l and --max-wer compare with a reference; name its JSONL field with "
                 "--reference-field");
  STUNT_CHECK_AS(ValueError,
                 (!o.min_entropy && !o.max_entropy) || o.kind == LabelKind::Generate ||
                     o.kind == LabelKind::Classify,
                 "--min-entropy and --max-entropy select by the teacher's entropy, which --kind "
                 "generate (per token) and classify (per item) measure; --kind ",
                 to_string(o.kind), " has none");
  STUNT_CHECK_AS(ValueError, !o.min_entropy || !o.max_entropy || *o.min_entropy <= *o.max_entropy,
                 "--min-entropy ", o.min_entropy.value_or(0), " is above --max-entropy ",
                 o.max_entropy.value_or(0), "; no item could be kept");
  STUNT_CHECK_AS(
      ValueError, o.generation.prefill_rows == 0 || (generates(o) && !teacher.is_encoder_decoder()),
      "--prefill-batch-size ", o.generation.prefill_rows,
      " splits the prefill of a causal LM's generation; ",
      generates(o) ? "an encoder-decoder encodes its batch at once" : "this kind does not generate",
      ", drop it");
  STUNT_CHECK_AS(ValueError, o.max_input_tokens >= 0, "--max-input-tokens ", o.max_input_tokens,
                 "; use 0 (the teacher's limit) or a positive count");
  check_teacher(teacher, job);
}

}  // namespace stunt::pseudolabel::detail
