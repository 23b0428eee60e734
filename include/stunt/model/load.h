#pragma once
/// Opens any model Stunt can run, by what `path` is.

#include <filesystem>
#include <memory>

#include "stunt/io/tokenizer.h"
#include "stunt/model/hf_model.h"
#include "stunt/model/model.h"

namespace stunt::model {

/// A Hugging Face folder (load_hf_model) or a GGUF file (load_gguf_model), with the weights as
/// stored. Anything else is a ValueError that says what Stunt runs. To open any model, compressed
/// or not, call stunt::load_model (quant/compressed_tensors.h), which decompresses
/// compressed-tensors folders and otherwise comes here.
std::unique_ptr<HfModel> load_dense_model(const std::filesystem::path& path,
                                          const LoadOptions& options = {});

/// The tokenizer that belongs to the model at `path`: the folder's tokenizer files, or the
/// vocabulary inside a GGUF file.
io::Tokenizer load_model_tokenizer(const std::filesystem::path& path);

}  // namespace stunt::model
