#include <iostream>

#include "commands.h"
#include "stunt/io/inspect.h"
#include "stunt/quant/compressed_tensors_summary.h"

namespace compress {

Runner add_inspect(CLI::App& app) {
  auto* cmd = app.add_subcommand(
      "inspect",
      "List the tensors of a checkpoint: name, dtype, shape, bytes, sparsity; for a "
      "compressed-tensors folder also its schemes and each quantized layer's storage");
  struct Options {
    std::string path;
    bool json = false;
    bool no_sparsity = false;
  };
  auto options = std::make_shared<Options>();
  cmd->add_option("PATH", options->path,
                  "safetensors file, Hugging Face folder, model.safetensors.index.json, "
                  "torch.save file or TorchScript archive")
      ->required();
  cmd->add_flag("--json", options->json, "Print JSON instead of a table");
  cmd->add_flag("--no-sparsity", options->no_sparsity,
                "Read headers only; do not count zeros (fast on huge checkpoints)");
  return [options] {
    const auto report = stunt::io::inspect(options->path, {.sparsity = !options->no_sparsity});
    const auto quantization = stunt::quant::summarize_compressed(options->path);
    if (options->json) {
      auto json = report.to_json();
      if (quantization) json["quantization"] = quantization->to_json();
      std::cout << json.dump(2) << "\n";
    } else {
      std::cout << report.to_table();
      if (quantization) std::cout << "\n" << quantization->to_table();
    }
    return 0;
  };
}

}  // namespace compress
