#include <fstream>
#include <iostream>
#include <iterator>
#include <nlohmann/json.hpp>

#include "commands.h"
#include "stunt/core/error.h"
#include "stunt/io/tokenizer.h"

namespace compress {
namespace {

// Lines split on '\n' only, empty lines kept; a final '\n' ends the last line.
std::vector<std::string_view> split_lines(std::string_view text) {
  std::vector<std::string_view> lines;
  size_t start = 0;
  while (start < text.size()) {
    const size_t end = text.find('\n', start);
    if (end == std::string_view::npos) {
      lines.push_back(text.substr(start));
      break;
    }
    lines.push_back(text.substr(start, end - start));
    start = end + 1;
  }
  return lines;
}

}  // namespace

Runner add_tokenize(CLI::App& app) {
  auto* cmd = app.add_subcommand(
      "tokenize",
      "Encode text with a Hugging Face tokenizer: the ids of each line as a JSON array");
  struct Options {
    std::string tokenizer;
    std::string file;
    bool no_special_tokens = false;
    bool json = false;
  };
  auto options = std::make_shared<Options>();
  cmd->add_option("TOKENIZER", options->tokenizer,
                  "tokenizer.json, SentencePiece .model, or a Hugging Face folder with one")
      ->required();
  cmd->add_option("FILE", options->file, "Text to encode, one text per line (default: stdin)");
  cmd->add_flag("--no-special-tokens", options->no_special_tokens,
                "Do not add the post-processor's tokens ([CLS]/[SEP], BOS, EOS)");
  cmd->add_flag(
      "--json", options->json,
      "Print one JSON object: kind, vocab_size, bos/eos/pad ids and the ids of every line");
  return [options] {
    const auto tokenizer = stunt::io::Tokenizer::from_path(options->tokenizer);
    std::string text;
    if (options->file.empty() || options->file == "-") {
      text.assign(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
    } else {
      std::ifstream in(options->file, std::ios::binary);
      STUNT_CHECK_AS(IoError, in.good(), "cannot open text file ", options->file);
      text.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    }
    const bool special = !options->no_special_tokens;
    if (options->json) {
      auto optional_id = [](std::optional<int64_t> id) {
        return id ? nlohmann::json(*id) : nlohmann::json(nullptr);
      };
      nlohmann::json out = {{"kind", tokenizer.kind()},
                            {"vocab_size", tokenizer.vocab_size()},
                            {"bos_id", optional_id(tokenizer.bos_id())},
                            {"eos_id", optional_id(tokenizer.eos_id())},
                            {"pad_id", optional_id(tokenizer.pad_id())},
                            {"ids", nlohmann::json::array()}};
      for (std::string_view line : split_lines(text))
        out["ids"].push_back(tokenizer.encode(line, special));
      std::cout << out.dump() << "\n";
      return 0;
    }
    std::string buffer;
    for (std::string_view line : split_lines(text)) {
      const auto ids = tokenizer.encode(line, special);
      buffer += '[';
      for (size_t i = 0; i < ids.size(); ++i) {
        if (i > 0) buffer += ", ";
        buffer += std::to_string(ids[i]);
      }
      buffer += "]\n";
    }
    std::cout << buffer;
    return 0;
  };
}

}  // namespace compress
