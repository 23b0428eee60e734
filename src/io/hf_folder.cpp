#include "stunt/io/hf_folder.h"

#include <algorithm>
#include <array>
#include <fstream>
#include <regex>
#include <sstream>
#include <string_view>

#include "stunt/core/atomic_file.h"
#include "stunt/core/error.h"

namespace fs = std::filesystem;

namespace stunt::io {
namespace {

// Files that describe the model rather than hold its weights; transformers and
// sentence-transformers read them next to the weights.
constexpr std::array<std::string_view, 20> kPassthroughFiles = {
    "config.json",
    "generation_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "vocab.txt",
    "vocab.json",
    "merges.txt",
    "spiece.model",
    "tokenizer.model",
    "sentencepiece.bpe.model",
    "chat_template.jinja",
    "chat_template.json",
    "preprocessor_config.json",
    "modules.json",
    "sentence_bert_config.json",
    "config_sentence_transformers.json",
    "README.md",
    "data_config.json",
};

// sentence-transformers module folders: "1_Pooling", "2_Normalize", "2_Dense", ...
const std::regex kModuleFolder(R"(^[0-9]+_[A-Za-z]+$)");

}  // namespace

HfWeights find_hf_weights(const fs::path& folder) {
  const std::array<std::pair<const char*, HfWeights::Kind>, 3> candidates = {{
      {"model.safetensors.index.json", HfWeights::Kind::SafetensorsIndex},
      {"model.safetensors", HfWeights::Kind::Safetensors},
      {"pytorch_model.bin", HfWeights::Kind::TorchBin},
  }};
  for (const auto& [name, kind] : candidates) {
    if (fs::is_regular_file(folder / name)) return HfWeights{kind, folder / name};
  }
  STUNT_CHECK_AS(IoError, !fs::is_regular_file(folder / "pytorch_model.bin.index.json"),
                 folder.string(),
                 ": sharded pytorch_model.bin checkpoints are not supported; "
                 "convert them to safetensors first");
  throw IoError(str("'", folder.string(), "' holds no model weights: expected ",
                    "model.safetensors.index.json, model.safetensors or pytorch_model.bin"));
}

std::vector<fs::path> hf_passthrough_files(const fs::path& folder) {
  std::vector<fs::path> files;
  for (const auto& name : kPassthroughFiles) {
    if (fs::is_regular_file(folder / name)) files.emplace_back(name);
  }
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(folder, ec)) {
    const std::string name = entry.path().filename().string();
    if (!entry.is_directory() || !std::regex_match(name, kModuleFolder)) continue;
    for (const auto& inner : fs::directory_iterator(entry.path())) {
      if (inner.is_regular_file() && inner.path().extension() == ".json") {
        files.push_back(fs::path(name) / inner.path().filename());
      }
    }
  }
  std::sort(files.begin(), files.end());
  return files;
}

std::vector<fs::path> copy_hf_passthrough_files(const fs::path& from, const fs::path& to) {
  const auto files = hf_passthrough_files(from);
  for (const auto& relative : files) {
    std::ifstream in(from / relative, std::ios::binary);
    STUNT_CHECK_AS(IoError, in.good(), "cannot read '", (from / relative).string(), "'");
    std::stringstream content;
    content << in.rdbuf();
    fs::create_directories((to / relative).parent_path());
    write_file_atomic(to / relative, content.str());
  }
  return files;
}

}  // namespace stunt::io
