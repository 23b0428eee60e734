#include "stunt/model/load.h"

#include "stunt/core/error.h"

namespace stunt::model {

std::unique_ptr<HfModel> load_dense_model(const std::filesystem::path& path,
                                          const LoadOptions& options) {
  STUNT_CHECK_AS(IoError, std::filesystem::exists(path), "model ", path.string(),
                 " does not exist");
  if (std::filesystem::is_directory(path)) return load_hf_model(path, options);
  if (path.extension() == ".gguf") return load_gguf_model(path, options);
  throw ValueError(str("cannot run ", path.string(),
                       ": expected a Hugging Face folder (config.json + weights) or a .gguf file"));
}

io::Tokenizer load_model_tokenizer(const std::filesystem::path& path) {
  return io::Tokenizer::from_path(path);
}

}  // namespace stunt::model
