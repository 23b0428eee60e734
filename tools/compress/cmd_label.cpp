// compress label: a teacher labels an unlabeled corpus into a resumable, sharded label folder;
// compress label verify: checks a label folder against its manifest.
#include <ATen/Parallel.h>

#include <iostream>
#include <nlohmann/json.hpp>

#include "commands.h"
#include "stunt/core/error.h"
#include "stunt/core/strings.h"
#include "stunt/model/load.h"
#include "stunt/pseudolabel/label_set.h"
#include "stunt/pseudolabel/labeler.h"
#include "stunt/quant/compressed_tensors.h"

namespace compress {
namespace {

struct LabelCommand {
  std::string teacher;
  std::string data;
  std::string output;
  std::string kind = "generate";
  std::string format = "auto";
  std::string too_long;
  double min_mean_log_prob = 0;
  int64_t eos_token_id = -1;
  int threads = 0;
  bool json = false;
  stunt::pseudolabel::LabelJob job;
  std::string verify_folder;
};

int run_label(LabelCommand& c) {
  namespace pl = stunt::pseudolabel;
  STUNT_CHECK_AS(ValueError, !c.teacher.empty() && !c.data.empty() && !c.output.empty(),
                 "compress label needs TEACHER, --data CORPUS and -o LABELS/ (or `compress label "
                 "verify LABELS/`)");
  if (c.threads > 0) at::set_num_threads(c.threads);
  pl::LabelJob& job = c.job;
  job.teacher_path = c.teacher;
  job.corpus = c.data;
  job.output = c.output;
  job.options.kind = pl::parse_label_kind(c.kind);
  if (c.format == "lines") job.corpus_options.format = pl::CorpusFormat::Lines;
  if (c.format == "jsonl") job.corpus_options.format = pl::CorpusFormat::Jsonl;
  if (c.too_long == "skip") job.options.too_long = pl::TooLong::Skip;
  if (c.too_long == "truncate") job.options.too_long = pl::TooLong::Truncate;
  if (c.eos_token_id >= 0) job.options.generation.eos_token_id = c.eos_token_id;
  // Checked before the teacher loads, so a typo costs nothing.
  pl::PromptTemplate check(job.corpus_options.prompt_template);
  auto teacher = stunt::quant::load_model(c.teacher);
  const stunt::io::Tokenizer tokenizer = stunt::model::load_model_tokenizer(c.teacher);
  const pl::LabelSummary s = pl::label_corpus(*teacher, tokenizer, job);
  const double rate = s.seconds > 0 ? static_cast<double>(s.items_this_run) / s.seconds : 0.0;
  nlohmann::json result = {{"output", c.output},
                           {"kind", c.kind},
                           {"items", s.items},
                           {"labeled", s.labeled},
                           {"dropped", s.dropped},
                           {"truncated", s.truncated},
                           {"shards", s.shards},
                           {"shards_resumed", s.shards_resumed},
                           {"items_this_run", s.items_this_run},
                           {"seconds", s.seconds},
                           {"items_per_s", rate},
                           {"new_tokens", s.new_tokens}};
  if (c.json) {
    std::cout << result.dump(2) << "\n";
    return 0;
  }
  std::cout << c.output << ": " << s.labeled << " of " << s.items << " items labeled";
  for (const auto& [reason, n] : s.dropped) std::cout << ", " << n << " dropped (" << reason << ")";
  if (s.truncated > 0) std::cout << ", " << s.truncated << " truncated";
  std::cout << "; this run: " << s.items_this_run << " items in " << stunt::str(s.seconds) << " s";
  if (s.shards_resumed > 0) std::cout << " (resumed after " << s.shards_resumed << " shards)";
  std::cout << "\n";
  return 0;
}

int run_verify(const LabelCommand& c) {
  const auto problems = stunt::pseudolabel::verify_labels(c.verify_folder);
  const auto manifest = stunt::pseudolabel::Manifest::read(c.verify_folder);
  if (problems.empty()) {
    std::cout << c.verify_folder << ": " << manifest.shards.size() << " shards, "
              << manifest.labeled() << " items, every file matches the manifest"
              << (manifest.complete ? "" : " (the job is not finished)") << "\n";
    return 0;
  }
  for (const std::string& p : problems) std::cerr << c.verify_folder << ": " << p << "\n";
  throw stunt::FormatError(stunt::str(c.verify_folder, ": ", problems.size(),
                                      " problems; rerun the labeling job with --restart, or "
                                      "delete the damaged shards' entries to relabel them"));
}

}  // namespace

Runner add_label(CLI::App& app) {
  auto* cmd = app.add_subcommand(
      "label", "A teacher labels an unlabeled corpus offline (sharded, resumable)");
  auto c = std::make_shared<LabelCommand>();
  auto& o = c->job.options;
  auto& g = o.generation;
  cmd->add_option("TEACHER", c->teacher, "Hugging Face folder, .gguf file or compressed folder");
  cmd->add_option("--data", c->data, "Corpus: text lines, or JSONL (.jsonl) records");
  cmd->add_option("-o,--output", c->output, "Label folder (created; rerun to resume)");
  cmd->add_option("--kind", c->kind, "generate, embed or classify")->capture_default_str();
  cmd->add_option("--template", c->job.corpus_options.prompt_template,
                  "The teacher's input, with {text} (or JSONL {field}s) inserted; \\n is a newline")
      ->capture_default_str();
  cmd->add_option("--format", c->format, "auto, lines or jsonl")->capture_default_str();
  cmd->add_option("--id-field", c->job.corpus_options.id_field, "JSONL field kept as the id")
      ->capture_default_str();
  cmd->add_option("--reference-field", c->job.corpus_options.reference_field,
                  "JSONL field with a human label, kept beside the teacher's");
  cmd->add_option("--shard-size", o.shard_size, "Items per shard")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  cmd->add_option("--batch-size", o.batch_size, "Items per teacher call")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  cmd->add_option("--max-input-tokens", o.max_input_tokens,
                  "Input tokens per item at most (0: the teacher's limit)")
      ->capture_default_str();
  cmd->add_option("--too-long", c->too_long,
                  "truncate or skip longer items (default: skip for generate, else truncate)");
  cmd->add_flag("--dedup", o.deduplicate, "Drop items whose input repeats an earlier one's");
  cmd->add_flag("!--no-special-tokens", o.add_special_tokens,
                "Tokenize without the tokenizer's special tokens");
  cmd->add_option("--max-new-tokens", g.max_new_tokens, "generate: tokens per item at most")
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 20))
      ->capture_default_str();
  cmd->add_flag("--sample", g.do_sample, "generate: sample instead of greedy decoding");
  cmd->add_option("--temperature", g.temperature, "generate: sampling temperature")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  cmd->add_option("--top-k", g.top_k, "generate: sample among the k most likely (0: all)")
      ->capture_default_str();
  cmd->add_option("--top-p", g.top_p, "generate: nucleus probability (1: off)")
      ->capture_default_str();
  cmd->add_option("--seed", g.seed, "generate: sampler seed")->capture_default_str();
  cmd->add_option("--num-beams", g.num_beams, "generate: beam search with this many beams")
      ->check(CLI::Range(int64_t{1}, int64_t{256}))
      ->capture_default_str();
  cmd->add_option("--length-penalty", g.length_penalty, "generate: beam length penalty")
      ->capture_default_str();
  cmd->add_option("--eos-token-id", c->eos_token_id,
                  "generate: stop token (default: the model's generation config)");
  cmd->add_option("--stop", o.stop_strings, "generate: end the text before this string (repeat)");
  cmd->add_option("--min-mean-log-prob", o.min_mean_log_prob,
                  "generate: drop items whose mean token log-probability is lower");
  cmd->add_option("--min-new-tokens", o.min_new_tokens,
                  "generate: drop items with fewer generated tokens")
      ->capture_default_str();
  cmd->add_flag("--restart", o.restart, "Delete the folder's labels and start over");
  cmd->add_option("--threads", c->threads, "Intra-op threads (0: LibTorch's default)");
  cmd->add_flag("--json", c->json, "Print the summary as JSON");

  auto* verify = cmd->add_subcommand("verify", "Check a label folder against its manifest");
  verify->add_option("LABELS", c->verify_folder, "Label folder")->required();

  return [c, verify] {
    if (verify->parsed()) return run_verify(*c);
    return run_label(*c);
  };
}

}  // namespace compress
