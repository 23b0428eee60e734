// compress generate: continue prompts with a causal LM or T5 (greedy, sampling or beam search).
#include <ATen/Parallel.h>

#include <iostream>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>

#include "commands.h"
#include "kernel_options.h"
#include "stunt/core/error.h"
#include "stunt/model/generate.h"
#include "stunt/model/load.h"
#include "stunt/quant/compressed_tensors.h"

namespace compress {

namespace {

struct GenerateCommand {
  std::string model;
  std::vector<std::string> prompts;
  std::vector<std::string> prompt_ids;
  stunt::model::GenerationOptions options;
  int64_t eos_token_id = -1;
  bool no_special_tokens = false;
  bool json = false;
  KernelOptions kernels;
  int threads = 0;
};

// "1,2,3" → {1, 2, 3}.
std::vector<int64_t> parse_ids(const std::string& text) {
  std::vector<int64_t> ids;
  std::stringstream in(text);
  std::string item;
  while (std::getline(in, item, ',')) {
    try {
      size_t used = 0;
      ids.push_back(std::stoll(item, &used));
      STUNT_CHECK(used == item.size(), "");
    } catch (const std::exception&) {
      throw stunt::ValueError(
          stunt::str("--prompt-ids \"", text, "\": \"", item,
                     "\" is not an integer; give token ids separated by commas, e.g. 1,2,3"));
    }
  }
  STUNT_CHECK(!ids.empty(), "--prompt-ids is empty; give token ids separated by commas");
  return ids;
}

int run_generate(const GenerateCommand& c) {
  namespace model = stunt::model;
  if (c.threads > 0) at::set_num_threads(c.threads);
  STUNT_CHECK(c.prompts.empty() != c.prompt_ids.empty(),
              "give the prompts either as text (--prompt) or as token ids (--prompt-ids)");
  auto lm = c.kernels.load(c.model);
  // Tiny test models given as ids may have no tokenizer; their output then has no text.
  std::optional<stunt::io::Tokenizer> tokenizer;
  if (!c.prompts.empty()) {
    tokenizer = model::load_model_tokenizer(c.model);
  } else {
    try {
      tokenizer = model::load_model_tokenizer(c.model);
    } catch (const stunt::Error&) {
    }
  }
  std::vector<std::vector<int64_t>> prompts;
  for (const std::string& text : c.prompts) {
    prompts.push_back(tokenizer->encode(text, !c.no_special_tokens));
  }
  for (const std::string& ids : c.prompt_ids) prompts.push_back(parse_ids(ids));

  model::GenerationOptions options = c.options;
  if (c.eos_token_id >= 0) options.eos_token_id = c.eos_token_id;
  const auto outputs = model::generate(*lm, prompts, options);

  nlohmann::json results = nlohmann::json::array();
  for (size_t i = 0; i < outputs.size(); ++i) {
    nlohmann::json r = {{"prompt_ids", prompts[i]}, {"ids", outputs[i]}};
    r["text"] = tokenizer ? nlohmann::json(tokenizer->decode(outputs[i])) : nlohmann::json();
    results.push_back(std::move(r));
  }
  if (c.json) {
    std::cout << nlohmann::json{{"model", c.model}, {"results", results}}.dump(2) << "\n";
    return 0;
  }
  for (const auto& r : results) {
    if (r["text"].is_null()) {
      std::cout << r["ids"].dump() << "\n";
    } else {
      std::cout << r["text"].get<std::string>() << "\n";
    }
  }
  return 0;
}

}  // namespace

Runner add_generate(CLI::App& app) {
  auto* cmd = app.add_subcommand(
      "generate",
      "Continue a prompt with a causal LM (Llama family, GPT-2) or T5, with a KV cache");
  auto c = std::make_shared<GenerateCommand>();
  auto& o = c->options;
  cmd->add_option("MODEL", c->model, "Hugging Face folder or .gguf file")->required();
  cmd->add_option("--prompt", c->prompts, "Prompt text (repeat for a batch)");
  cmd->add_option("--prompt-ids", c->prompt_ids,
                  "Prompt as token ids, e.g. 1,2,3, bypassing the tokenizer (repeat for a batch)");
  cmd->add_option("--max-new-tokens", o.max_new_tokens, "Tokens to generate at most")
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 20))
      ->capture_default_str();
  cmd->add_flag("--sample", o.do_sample, "Sample instead of greedy decoding");
  cmd->add_option("--temperature", o.temperature, "Sampling temperature")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  cmd->add_option("--top-k", o.top_k, "Sample among the k most likely tokens (0: all)")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  cmd->add_option("--top-p", o.top_p, "Nucleus sampling probability (1: off)")
      ->check(CLI::Range(0.0, 1.0))
      ->capture_default_str();
  cmd->add_option("--seed", o.seed, "Sampler seed (same seed, same tokens)")->capture_default_str();
  cmd->add_option("--num-beams", o.num_beams, "Beam search with this many beams (1: off)")
      ->check(CLI::Range(int64_t{1}, int64_t{256}))
      ->capture_default_str();
  cmd->add_option("--length-penalty", o.length_penalty,
                  "Beam score = log-probability / length^length_penalty")
      ->capture_default_str();
  cmd->add_flag("--early-stopping", o.early_stopping,
                "Beam search stops once num_beams beams finished");
  cmd->add_option("--eos-token-id", c->eos_token_id,
                  "Stop token (default: generation_config.json / config.json)");
  cmd->add_flag("--no-special-tokens", c->no_special_tokens,
                "Do not add the tokenizer's special tokens (BOS, EOS) to the prompt");
  cmd->add_option("--threads", c->threads, "CPU threads (default: LibTorch's choice)");
  c->kernels.add_to(cmd);
  cmd->add_flag("--json", c->json, "Print JSON: prompt ids, generated ids and text per prompt");
  return [c] { return run_generate(*c); };
}

}  // namespace compress
