// Test driver for tests/python/test_datasets_reference.py: prints what stunt::io datasets make
// of a file, one JSON object per line, then a summary line.
//
//   stunt_dataset TOKENIZER FILE windows SEQ_LEN [options]
//   stunt_dataset TOKENIZER FILE lines [options]
//   stunt_dataset TOKENIZER FILE calibration COUNT SEQ_LEN SEED [options]
//   options: --no-special-tokens, --chunk-bytes N
//
// Each sample: {"ids": [...]} (and "label", "line" for lines). The last line:
// {"summary": true, "tokens": N, "bytes_read": N, "size_bytes": N, "unverified_cuts": N}.
#include <cstring>
#include <iostream>
#include <nlohmann/json.hpp>
#include <string>

#include "stunt/io/dataset.h"

int main(int argc, char** argv) {
  if (argc < 4) {
    std::cerr << "usage: stunt_dataset TOKENIZER FILE windows|lines|calibration ARGS...\n";
    return 2;
  }
  try {
    const auto tokenizer = stunt::io::Tokenizer::from_path(argv[1]);
    const std::string file = argv[2], mode = argv[3];
    std::vector<std::string> args;
    stunt::io::DatasetOptions options;
    for (int i = 4; i < argc; ++i) {
      if (std::strcmp(argv[i], "--no-special-tokens") == 0) {
        options.add_special_tokens = false;
      } else if (std::strcmp(argv[i], "--chunk-bytes") == 0 && i + 1 < argc) {
        options.chunk_bytes = std::stoull(argv[++i]);
      } else {
        args.emplace_back(argv[i]);
      }
    }
    nlohmann::json summary = {{"summary", true}};
    if (mode == "windows" && args.size() == 1) {
      auto windows = stunt::io::TokenWindows::open(file, tokenizer, std::stoll(args[0]), options);
      while (auto window = windows.next()) std::cout << nlohmann::json{{"ids", *window}} << "\n";
      summary["tokens"] = windows.tokens_read();
      summary["bytes_read"] = windows.bytes_read();
      summary["size_bytes"] = windows.size_bytes();
      summary["unverified_cuts"] = windows.unverified_cuts();
    } else if (mode == "lines" && args.empty()) {
      auto dataset = stunt::io::TextDataset::open(file, tokenizer, options);
      while (auto sample = dataset.next()) {
        nlohmann::json j = {{"ids", sample->input_ids}, {"line", sample->line}};
        if (sample->label) j["label"] = *sample->label;
        std::cout << j << "\n";
      }
      summary["bytes_read"] = dataset.bytes_read();
      summary["size_bytes"] = dataset.size_bytes();
    } else if (mode == "calibration" && args.size() == 3) {
      const auto samples = stunt::io::calibration_samples(
          file, tokenizer, std::stoll(args[0]), std::stoll(args[1]), std::stoull(args[2]), options);
      for (const auto& s : samples) std::cout << nlohmann::json{{"ids", s}} << "\n";
    } else {
      std::cerr << "stunt_dataset: unknown mode or wrong arguments for '" << mode << "'\n";
      return 2;
    }
    std::cout << summary << "\n";
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  }
}
