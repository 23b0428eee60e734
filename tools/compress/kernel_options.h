#pragma once
// --kernels and --explain, shared by the commands that run a model (eval, generate, label).

#include <CLI/CLI.hpp>

#include <memory>
#include <string>

#include "stunt/quant/quantized_kernels.h"

namespace compress {

struct KernelOptions {
  std::string mode = "fast";
  bool explain = false;

  void add_to(CLI::App* cmd) {
    cmd->add_option("--kernels", mode,
                    "fast: quantized layers run packed int4/int8 kernels where one takes them; "
                    "reference: decompressed float32 weights, fake-quantized inputs")
        ->capture_default_str();
    cmd->add_flag("--explain", explain,
                  "Log which kernel runs each quantized layer and why others refused");
  }

  std::unique_ptr<stunt::model::HfModel> load(const std::string& path) const {
    return stunt::quant::load_model_for_inference(
        path, stunt::quant::parse_kernel_mode(mode, "--kernels"), explain);
  }
};

}  // namespace compress
