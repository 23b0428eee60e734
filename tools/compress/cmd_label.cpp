// compress label: a teacher labels an unlabeled corpus into a resumable, sharded label folder;
// compress label verify: checks a label folder against its manifest.
#include <ATen/Parallel.h>

#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <iterator>
#include <nlohmann/json.hpp>

#include "commands.h"
#include "kernel_options.h"
#include "stunt/core/error.h"
#include "stunt/core/strings.h"
#include "stunt/model/load.h"
#include "stunt/pseudolabel/label_set.h"
#include "stunt/pseudolabel/labeler.h"
#include "stunt/quant/compressed_tensors.h"

extern "C" char** environ;

namespace compress {
namespace {

struct LabelCommand {
  std::string teacher;
  std::string data;
  std::string output;
  std::string kind = "generate";
  std::string format = "auto";
  std::string too_long;
  int64_t eos_token_id = -1;
  int threads = 0;
  bool json = false;
  KernelOptions kernels;
  stunt::pseudolabel::LabelJob job;
  std::string verify_folder;
  std::string merge_folder;
  int64_t num_shards = 0;
  int64_t shard_index = -1;
  int workers = 1;
  std::string logits_of = "input";
};

/// This process's arguments, from /proc/self/cmdline.
std::vector<std::string> own_arguments() {
  std::ifstream in("/proc/self/cmdline", std::ios::binary);
  const std::string all((std::istreambuf_iterator<char>(in)), {});
  std::vector<std::string> args;
  for (size_t start = 0; start < all.size();) {
    const size_t end = all.find('\0', start);
    args.push_back(all.substr(start, end - start));
    start = end == std::string::npos ? all.size() : end + 1;
  }
  return args;
}

/// --workers K: K copies of this command, each with --num-shards K --shard-index i and a share
/// of the threads; the caller merges their parts.
void run_workers(const LabelCommand& c) {
  std::vector<std::string> base;
  const std::vector<std::string> args = own_arguments();
  for (size_t i = 0; i < args.size(); ++i) {
    if (args[i] == "--workers" || args[i] == "--threads") {
      ++i;
      continue;
    }
    if (args[i].rfind("--workers=", 0) == 0 || args[i].rfind("--threads=", 0) == 0) continue;
    base.push_back(args[i]);
  }
  const int threads = std::max(1, (c.threads > 0 ? c.threads : at::get_num_threads()) / c.workers);
  std::vector<pid_t> children;
  for (int w = 0; w < c.workers; ++w) {
    std::vector<std::string> child = base;
    child[0] = "/proc/self/exe";
    for (const std::string& extra :
         {std::string("--num-shards"), std::to_string(c.workers), std::string("--shard-index"),
          std::to_string(w), std::string("--threads"), std::to_string(threads)}) {
      child.push_back(extra);
    }
    std::vector<char*> argv;
    for (std::string& a : child) argv.push_back(a.data());
    argv.push_back(nullptr);
    pid_t pid = 0;
    const int failed = posix_spawn(&pid, "/proc/self/exe", nullptr, nullptr, argv.data(), environ);
    STUNT_CHECK_AS(IoError, failed == 0, "--workers: starting worker ", w, " failed (",
                   std::strerror(failed), ")");
    children.push_back(pid);
  }
  std::string failures;
  for (size_t w = 0; w < children.size(); ++w) {
    int status = 0;
    waitpid(children[w], &status, 0);
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) continue;
    failures += stunt::str(failures.empty() ? "" : ", ", "worker ", w,
                           WIFEXITED(status) ? " exited with " : " died of signal ",
                           WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
  }
  STUNT_CHECK_AS(ValueError, failures.empty(), "--workers: ", failures,
                 "; the finished shards are kept: run the same command again to finish");
}

int run_label(LabelCommand& c) {
  namespace pl = stunt::pseudolabel;
  STUNT_CHECK_AS(ValueError, !c.teacher.empty() && !c.data.empty() && !c.output.empty(),
                 "compress label needs TEACHER, --data CORPUS and -o LABELS/ (or `compress label "
                 "verify LABELS/`)");
  if (c.threads > 0) at::set_num_threads(c.threads);
  pl::LabelJob& job = c.job;
  // torchrun, Slurm arrays, indexed jobs: RANK and WORLD_SIZE split the job when --num-shards
  // does not.
  if (c.num_shards == 0 && std::getenv("WORLD_SIZE") && std::getenv("RANK")) {
    c.num_shards = std::stoll(std::getenv("WORLD_SIZE"));
    c.shard_index = std::stoll(std::getenv("RANK"));
  }
  STUNT_CHECK_AS(ValueError, c.workers == 1 || c.num_shards == 0,
                 "--workers splits the job itself; give either --workers or "
                 "--num-shards/--shard-index (or RANK and WORLD_SIZE), not both");
  if (c.workers > 1) {
    run_workers(c);
    const pl::Manifest merged = pl::merge_label_parts(c.output);
    std::cout << c.output << ": " << merged.labeled() << " of "
              << merged.input.value("items", int64_t{0}) << " items labeled by " << c.workers
              << " workers\n";
    return 0;
  }
  if (c.num_shards > 0) {
    STUNT_CHECK_AS(ValueError, c.shard_index >= 0 && c.shard_index < c.num_shards, "--shard-index ",
                   c.shard_index, " with --num-shards ", c.num_shards, "; give an index from 0 to ",
                   c.num_shards - 1);
    job.options.num_parts = c.num_shards;
    job.options.part_index = c.shard_index;
  }
  job.teacher_path = c.teacher;
  job.corpus = c.data;
  job.output = c.output;
  job.options.kind = pl::parse_label_kind(c.kind);
  if (c.format == "lines") job.corpus_options.format = pl::CorpusFormat::Lines;
  if (c.format == "jsonl") job.corpus_options.format = pl::CorpusFormat::Jsonl;
  if (c.too_long == "skip") job.options.too_long = pl::TooLong::Skip;
  if (c.too_long == "truncate") job.options.too_long = pl::TooLong::Truncate;
  if (c.eos_token_id >= 0) job.options.generation.eos_token_id = c.eos_token_id;
  job.options.logits_of_generation = c.logits_of == "generation";
  // Checked before the teacher loads, so a typo costs nothing.
  pl::PromptTemplate check(job.corpus_options.prompt_template);
  job.options.kernels = c.kernels.mode;
  auto teacher = c.kernels.load(c.teacher);
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
  std::cout << c.output << ": ";
  if (job.options.num_parts > 1) {
    std::cout << "part " << job.options.part_index << " of " << job.options.num_parts << ": ";
  }
  std::cout << s.labeled << " of " << s.items << " items labeled";
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
  cmd->add_option("--kind", c->kind, "generate, logits, embed or classify")->capture_default_str();
  cmd->add_option("--logits-top-k", o.logits_top_k, "logits: log-probabilities kept per position")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  cmd->add_option("--logits-temperature", o.logits_temperature,
                  "logits: store the top-k of softmax(logits / T); label at the distillation "
                  "recipe's temperature for the exact tempered tail")
      ->capture_default_str();
  cmd->add_option("--logits-of", c->logits_of,
                  "logits: of the item's tokens (input) or of the teacher's generation")
      ->check(CLI::IsMember({"input", "generation"}))
      ->capture_default_str();
  cmd->add_option("--template", c->job.corpus_options.prompt_template,
                  "The teacher's input, with {text} (or JSONL {field}s) inserted; \\n is a newline")
      ->capture_default_str();
  cmd->add_option("--format", c->format, "auto, lines or jsonl")
      ->check(CLI::IsMember({"auto", "lines", "jsonl"}))
      ->capture_default_str();
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
  cmd->add_option("--prefill-batch-size", o.generation.prefill_rows,
                  "generate with a causal LM: prompts prefilled together (0: the whole batch); a "
                  "batch larger than this decodes more rows per step")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  cmd->add_option("--max-input-tokens", o.max_input_tokens,
                  "Input tokens per item at most (0: the teacher's limit)")
      ->capture_default_str();
  cmd->add_option("--too-long", c->too_long,
                  "truncate or skip longer items (default: skip for generate, else truncate)")
      ->check(CLI::IsMember({"truncate", "skip"}));
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
  cmd->add_option("--min-rouge-l", o.min_rouge_l,
                  "generate: drop items whose ROUGE-L F1 against the reference is lower");
  cmd->add_option("--max-wer", o.max_wer,
                  "generate: drop items whose word error rate against the reference is higher");
  cmd->add_option("--min-entropy", o.min_entropy,
                  "generate, classify: drop items the teacher is surer of (mean entropy, nats)");
  cmd->add_option("--max-entropy", o.max_entropy,
                  "generate, classify: drop items the teacher is less sure of (entropy, nats)");
  cmd->add_option("--max-repeated-trigrams", o.max_repeated_trigrams,
                  "generate: drop items whose share of repeated 3-grams is higher");
  cmd->add_option("--stratify-by", c->job.corpus_options.stratum_field,
                  "JSONL field naming each item's stratum (with --per-stratum)");
  cmd->add_option("--per-stratum", o.per_stratum,
                  "Keep the first N items of each stratum, in input order");
  cmd->add_flag("--restart", o.restart, "Delete the folder's labels and start over");
  cmd->add_option("--threads", c->threads, "Intra-op threads (0: LibTorch's default)");
  c->kernels.add_to(cmd);
  cmd->add_flag("--json", c->json, "Print the summary as JSON");

  cmd->add_option("--workers", c->workers,
                  "Label with this many local processes, then merge their parts")
      ->check(CLI::Range(1, 256))
      ->capture_default_str();
  cmd->add_option("--num-shards", c->num_shards,
                  "Split the job into this many parts (default: WORLD_SIZE when set)");
  cmd->add_option("--shard-index", c->shard_index, "The part this process labels (or RANK)");

  auto* verify = cmd->add_subcommand("verify", "Check a label folder against its manifest");
  verify->add_option("LABELS", c->verify_folder, "Label folder")->required();
  auto* merge = cmd->add_subcommand("merge", "Join the finished parts of a split job");
  merge->add_option("LABELS", c->merge_folder, "Label folder")->required();

  return [c, verify, merge] {
    if (verify->parsed()) return run_verify(*c);
    if (merge->parsed()) {
      const auto merged = stunt::pseudolabel::merge_label_parts(c->merge_folder);
      std::cout << c->merge_folder << ": " << merged.shards.size() << " shards, "
                << merged.labeled() << " items labeled; manifest.json written\n";
      return 0;
    }
    return run_label(*c);
  };
}

}  // namespace compress
