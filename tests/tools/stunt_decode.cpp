// Test driver for tests/python/test_generate_reference.py: runs a batch through the KV-cache
// path (HfModel::decode_step) and writes the logits of every position, to compare with the
// full forward (stunt_forward) and transformers.
//
//   stunt_decode MODEL_DIR|MODEL.gguf INPUTS.safetensors OUTPUT.safetensors PREFILL
//
// Causal LMs: input_ids [b, s] (and attention_mask, left padding allowed); the first PREFILL
// positions go in one step, then one token per step. T5: the encoder reads input_ids (and
// attention_mask), the decoder decoder_input_ids the same way. OUTPUT gets logits [b, s, vocab].
#include <ATen/ATen.h>

#include <iostream>
#include <string>

#include "stunt/io/safetensors.h"
#include "stunt/model/load.h"

int main(int argc, char** argv) {
  if (argc != 5) {
    std::cerr << "usage: stunt_decode MODEL INPUTS OUTPUT PREFILL\n";
    return 2;
  }
  try {
    auto model = stunt::model::load_dense_model(argv[1]);
    auto inputs = stunt::io::SafetensorsFile::open(argv[2]);
    const int64_t prefill = std::stoll(argv[4]);
    at::Tensor ids = inputs->tensor("input_ids").clone();
    at::Tensor mask;
    if (inputs->contains("attention_mask")) mask = inputs->tensor("attention_mask").clone();
    stunt::model::KvCache cache;
    if (model->is_encoder_decoder()) {
      model->start_decoding(ids, mask, cache);
      ids = inputs->tensor("decoder_input_ids").clone();
      mask = at::Tensor();
    }
    std::vector<at::Tensor> logits;
    auto part = [](const at::Tensor& t, int64_t start, int64_t len) {
      return t.defined() ? t.narrow(1, start, len) : at::Tensor();
    };
    logits.push_back(model->decode_step(part(ids, 0, prefill), part(mask, 0, prefill), cache, 0));
    for (int64_t i = prefill; i < ids.size(1); ++i) {
      logits.push_back(model->decode_step(part(ids, i, 1), part(mask, i, 1), cache, 0));
    }
    stunt::io::save_safetensors(argv[3], {{"logits", at::cat(logits, 1)}});
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  }
}
