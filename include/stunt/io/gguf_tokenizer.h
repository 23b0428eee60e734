#pragma once
/// The tokenizer a GGUF file carries (tokenizer.ggml.*), written as the Hugging Face
/// tokenizer.json that reproduces llama.cpp's tokenization for it.

#include <string>

#include "stunt/io/gguf.h"

namespace stunt::io {

/// tokenizer.json text for `file`'s vocabulary. Supported: byte-level BPE vocabularies
/// (tokenizer.ggml.model "gpt2") with the pre-tokenizers "gpt-2" and "smollm".
/// Others throw NotImplementedError naming the model and pre-tokenizer.
std::string gguf_tokenizer_json(const GgufFile& file);

/// tokenizer_config.json text: bos/eos/pad/unk tokens, add_bos_token and the chat template.
std::string gguf_tokenizer_config_json(const GgufFile& file);

}  // namespace stunt::io
