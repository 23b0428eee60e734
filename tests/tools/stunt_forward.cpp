// Test driver for the parity tests (tests/python/test_model_parity.py, test_ptq_reference.py):
// loads a Hugging Face folder (compressed-tensors folders decompressed, as the CLI does) with
// Stunt, runs one batch read from a safetensors file, and writes the outputs.
//
//   stunt_forward MODEL_DIR|MODEL.gguf INPUTS.safetensors OUTPUT.safetensors
//                 [--blockwise | --gradients]
//
// INPUTS holds input_ids and optionally attention_mask and decoder_input_ids (int64).
// OUTPUT gets logits (if the model has a head), hidden, and embeddings (sentence pooling) for
// encoders. --blockwise runs embed / run_block / head by hand instead of forward().
// --gradients readies the model for training, runs forward_with_grad, backpropagates
// sum(output * probe) (INPUTS' float `probe`, shaped like the logits, or like hidden when there
// are none) and adds "grad:<tensor>" for every trainable tensor that received a gradient.
#include <ATen/ATen.h>
#include <c10/core/GradMode.h>

#include <cstring>
#include <iostream>
#include <set>

#include "stunt/core/error.h"
#include "stunt/io/safetensors.h"
#include "stunt/model/hf_model.h"
#include "stunt/quant/compressed_tensors.h"
#include "stunt/quant/quantized_kernels.h"

int main(int argc, char** argv) {
  if (argc < 4) {
    std::cerr << "usage: stunt_forward MODEL_DIR INPUTS OUTPUT [--blockwise | --gradients | "
                 "--packed]\n";
    return 2;
  }
  try {
    const bool blockwise = argc > 4 && std::strcmp(argv[4], "--blockwise") == 0;
    const bool gradients = argc > 4 && std::strcmp(argv[4], "--gradients") == 0;
    // --packed: quantized layers run Stunt's int4/int8 kernels, as compress eval does.
    const bool packed = argc > 4 && std::strcmp(argv[4], "--packed") == 0;
    const std::filesystem::path source = argv[1];
    std::unique_ptr<stunt::model::HfModel> model =
        source.extension() == ".gguf" ? stunt::model::load_gguf_model(source)
        : packed ? stunt::quant::load_model_for_inference(source, stunt::quant::KernelMode::Fast)
                 : stunt::quant::load_model(source);
    auto inputs = stunt::io::SafetensorsFile::open(argv[2]);
    stunt::model::Batch batch;
    batch.input_ids = inputs->tensor("input_ids").clone();
    if (inputs->contains("attention_mask"))
      batch.attention_mask = inputs->tensor("attention_mask").clone();
    if (inputs->contains("decoder_input_ids")) {
      batch.decoder_input_ids = inputs->tensor("decoder_input_ids").clone();
    }
    stunt::model::Output output;
    std::vector<std::pair<std::string, at::Tensor>> parameters;
    if (gradients) {
      parameters = model->prepare_training();
      output = model->forward_with_grad(batch);
      const at::Tensor& scored = output.logits.defined() ? output.logits : output.hidden;
      (scored * inputs->tensor("probe")).sum().backward();
      output.logits = output.logits.defined() ? output.logits.detach() : output.logits;
      output.hidden = output.hidden.detach();
    } else if (blockwise) {
      c10::NoGradGuard no_grad;
      stunt::model::BlockState state = model->embed(batch);
      for (int i = 0; i < model->num_blocks(); ++i) model->run_block(i, state);
      output = model->head(state);
    } else {
      output = model->forward(batch);
    }
    std::vector<stunt::io::NamedTensor> out;
    std::set<std::string> transposed;  // GPT-2's Conv1D: checkpoints store [in, out]
    for (const stunt::model::Layer* layer : model->layers()) {
      if (layer->stored_transposed) transposed.insert(layer->name + ".weight");
    }
    for (const auto& [name, p] : parameters) {
      if (!p.grad().defined()) continue;
      out.emplace_back("grad:" + name,
                       transposed.count(name) ? p.grad().t().contiguous() : p.grad());
    }
    if (output.logits.defined()) out.emplace_back("logits", output.logits);
    out.emplace_back("hidden", output.hidden);
    if (model->architecture() == "bert") {
      auto pooling = stunt::model::SentencePooling::from_folder(argv[1]);
      out.emplace_back("embeddings", pooling(output.hidden, batch.attention_mask));
    }
    stunt::io::save_safetensors(argv[3], out);
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  }
}
