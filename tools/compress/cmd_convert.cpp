#include <iostream>

#include "commands.h"
#include "stunt/core/atomic_file.h"
#include "stunt/core/logging.h"
#include "stunt/io/checkpoint.h"
#include "stunt/io/hf_folder.h"
#include "stunt/io/safetensors.h"
#include "stunt/model/hf_model.h"
#include "stunt/quant/compressed_tensors.h"

namespace compress {

Runner add_convert(CLI::App& app) {
  auto* cmd = app.add_subcommand(
      "convert",
      "Rewrite any checkpoint Stunt reads as safetensors (one file or a sharded folder); a "
      "GGUF model becomes a Hugging Face folder");
  struct Options {
    std::string input;
    std::string output;
    uint64_t max_shard_bytes = 0;
    bool overwrite = false;
  };
  auto options = std::make_shared<Options>();
  cmd->add_option("INPUT", options->input, "Checkpoint to read (any format `inspect` reads)")
      ->required();
  cmd->add_option("-o,--output", options->output,
                  "Output: a .safetensors file, or a folder (Hugging Face layout)")
      ->required();
  cmd->add_option("--max-shard-bytes", options->max_shard_bytes,
                  "Shard the output folder at this many bytes (default: 5 GB as transformers)");
  cmd->add_flag("--overwrite", options->overwrite, "Replace an existing output");
  return [options] {
    namespace fs = std::filesystem;
    if (fs::path(options->input).extension() == ".gguf" &&
        fs::path(options->output).extension() != ".safetensors") {
      // A GGUF model becomes a Hugging Face folder: config, dequantized weights, tokenizer.
      // (To a .safetensors file, its tensors are written dequantized under llama.cpp's names.)
      const fs::path out(options->output);
      auto model = stunt::model::load_gguf_model(options->input);
      stunt::AtomicDirectory folder(out, {.overwrite = options->overwrite});
      model->save(folder.staging());
      folder.commit();
      stunt::log::info("wrote ", model->architecture(), " model to ", out.string());
      return 0;
    }
    if (stunt::quant::is_compressed_tensors_folder(options->input) &&
        fs::path(options->output).extension() != ".safetensors") {
      // A compressed-tensors folder becomes a dense one: weights decompressed, no
      // quantization_config.
      auto model = stunt::quant::load_model(options->input);
      stunt::AtomicDirectory folder(options->output, {.overwrite = options->overwrite});
      model->save(folder.staging());
      folder.commit();
      stunt::log::info("wrote the decompressed ", model->architecture(), " model to ",
                       options->output);
      return 0;
    }
    const auto checkpoint = stunt::io::Checkpoint::open(options->input);
    std::vector<stunt::io::NamedTensor> tensors;
    for (const auto& entry : checkpoint->entries()) {
      tensors.emplace_back(entry.name, checkpoint->load(entry.name));
    }
    const fs::path out(options->output);
    if (out.extension() == ".safetensors") {
      STUNT_CHECK_AS(IoError, options->overwrite || !fs::exists(out), "output '", out.string(),
                     "' exists; pass --overwrite to replace it");
      stunt::io::save_safetensors(out, tensors, {.metadata = checkpoint->metadata()});
      stunt::log::info("wrote ", tensors.size(), " tensors to ", out.string());
      return 0;
    }
    stunt::AtomicDirectory folder(out, {.overwrite = options->overwrite});
    stunt::io::ShardOptions shard_options;
    if (options->max_shard_bytes > 0) shard_options.max_shard_bytes = options->max_shard_bytes;
    const auto files =
        stunt::io::save_safetensors_sharded(folder.staging(), tensors, shard_options);
    if (fs::is_directory(options->input)) {
      stunt::io::copy_hf_passthrough_files(options->input, folder.staging());
    }
    folder.commit();
    stunt::log::info("wrote ", tensors.size(), " tensors in ", files.size(), " file(s) to ",
                     out.string());
    return 0;
  };
}

}  // namespace compress
