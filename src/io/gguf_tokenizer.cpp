#include "stunt/io/gguf_tokenizer.h"

#include <nlohmann/json.hpp>

#include "stunt/core/error.h"

namespace stunt::io {

namespace {

using nlohmann::json;

// llama.cpp's token types.
constexpr int64_t kControlToken = 3;
constexpr int64_t kUserDefinedToken = 4;

std::string text_of(const GgufFile& file, const std::string& key, const std::string& fallback) {
  const GgufValue* value = file.find(key);
  return value == nullptr ? fallback : file.string(key);
}

json byte_level(bool use_regex) {
  return {{"type", "ByteLevel"},
          {"add_prefix_space", false},
          {"trim_offsets", true},
          {"use_regex", use_regex}};
}

// The pre-tokenizer that reproduces llama.cpp's pre-tokenizer type `pre`.
json pre_tokenizer(const std::string& pre, const std::string& source) {
  // llama.cpp's "default" is its own four-expression split, not GPT-2's: refused rather than
  // approximated.
  if (pre == "gpt-2") return byte_level(true);
  if (pre == "smollm") {
    // Digits one by one, then GPT-2's expression.
    return {{"type", "Sequence"},
            {"pretokenizers",
             json::array({{{"type", "Digits"}, {"individual_digits", true}}, byte_level(true)})}};
  }
  throw NotImplementedError(
      str(source, ": tokenizer.ggml.pre \"", pre, "\" is not supported; supported: gpt-2, smollm"));
}

// Item `index` of the array `key`, which must be a string.
std::string item_string(const GgufFile& file, const char* key, const GgufValue::Array& items,
                        size_t index) {
  const GgufValue& item = items[index];
  STUNT_CHECK_AS(FormatError, std::holds_alternative<std::string>(item.value), file.path().string(),
                 ": metadata ", key, "[", index, "] holds a ", item.kind(), "; expected a string");
  return item.string();
}

const GgufValue::Array& required_array(const GgufFile& file, const std::string& key) {
  const GgufValue* value = file.find(key);
  STUNT_CHECK_AS(FormatError, value != nullptr, file.path().string(), ": metadata ", key,
                 " is missing; the file carries no tokenizer");
  STUNT_CHECK_AS(
      FormatError, std::holds_alternative<std::shared_ptr<GgufValue::Array>>(value->value),
      file.path().string(), ": metadata ", key, " holds a ", value->kind(), "; expected an array");
  return value->array();
}

std::string token_at(const GgufFile& file, int64_t id) {
  const auto& tokens = required_array(file, "tokenizer.ggml.tokens");
  STUNT_CHECK_AS(FormatError, id >= 0 && id < static_cast<int64_t>(tokens.size()),
                 file.path().string(), ": special token id ", id, " is outside the vocabulary");
  return item_string(file, "tokenizer.ggml.tokens", tokens, id);
}

}  // namespace

std::string gguf_tokenizer_json(const GgufFile& file) {
  const std::string source = file.path().string();
  const std::string model = text_of(file, "tokenizer.ggml.model", "");
  const std::string pre = text_of(file, "tokenizer.ggml.pre", "(none)");
  STUNT_CHECK_AS(NotImplementedError, model == "gpt2", source, ": tokenizer.ggml.model \"", model,
                 "\" is not supported; supported: gpt2 (byte-level BPE)");
  const auto& tokens = required_array(file, "tokenizer.ggml.tokens");
  const auto& merges = required_array(file, "tokenizer.ggml.merges");
  const GgufValue::Array* types = file.find("tokenizer.ggml.token_type") != nullptr
                                      ? &required_array(file, "tokenizer.ggml.token_type")
                                      : nullptr;
  STUNT_CHECK_AS(FormatError, types == nullptr || types->size() == tokens.size(), source,
                 ": tokenizer.ggml.token_type has ", types ? types->size() : 0, " entries for ",
                 tokens.size(), " tokens");

  json vocab = json::object();
  json added = json::array();
  for (size_t id = 0; id < tokens.size(); ++id) {
    const std::string token = item_string(file, "tokenizer.ggml.tokens", tokens, id);
    vocab[token] = id;
    const int64_t type = types && (*types)[id].is_integer() ? (*types)[id].integer() : 1;
    if (type == kControlToken || type == kUserDefinedToken) {
      added.push_back({{"id", id},
                       {"content", token},
                       {"single_word", false},
                       {"lstrip", false},
                       {"rstrip", false},
                       {"normalized", type == kUserDefinedToken},
                       {"special", type == kControlToken}});
    }
  }
  json merge_list = json::array();
  for (size_t i = 0; i < merges.size(); ++i) {
    merge_list.push_back(item_string(file, "tokenizer.ggml.merges", merges, i));
  }

  json tokenizer = {{"version", "1.0"},
                    {"truncation", nullptr},
                    {"padding", nullptr},
                    {"added_tokens", added},
                    {"normalizer", nullptr},
                    {"pre_tokenizer", pre_tokenizer(pre, source)},
                    {"post_processor", nullptr},
                    {"decoder", byte_level(true)},
                    {"model",
                     {{"type", "BPE"},
                      {"dropout", nullptr},
                      {"unk_token", nullptr},
                      {"continuing_subword_prefix", nullptr},
                      {"end_of_word_suffix", nullptr},
                      {"fuse_unk", false},
                      {"byte_fallback", false},
                      {"ignore_merges", false},
                      {"vocab", vocab},
                      {"merges", merge_list}}}};
  const GgufValue* add_bos = file.find("tokenizer.ggml.add_bos_token");
  const GgufValue* bos = file.find("tokenizer.ggml.bos_token_id");
  if (add_bos != nullptr && std::get_if<bool>(&add_bos->value) && std::get<bool>(add_bos->value) &&
      bos != nullptr) {
    const int64_t bos_id = file.integer("tokenizer.ggml.bos_token_id");
    const std::string bos_token = token_at(file, bos_id);
    tokenizer["post_processor"] = {
        {"type", "TemplateProcessing"},
        {"single", json::array({{{"SpecialToken", {{"id", bos_token}, {"type_id", 0}}}},
                                {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}})},
        {"pair", json::array({{{"SpecialToken", {{"id", bos_token}, {"type_id", 0}}}},
                              {{"Sequence", {{"id", "A"}, {"type_id", 0}}}},
                              {{"Sequence", {{"id", "B"}, {"type_id", 1}}}}})},
        {"special_tokens",
         {{bos_token,
           {{"id", bos_token},
            {"ids", json::array({bos_id})},
            {"tokens", json::array({bos_token})}}}}}};
  }
  return tokenizer.dump();
}

std::string gguf_tokenizer_config_json(const GgufFile& file) {
  json config = {{"tokenizer_class", "PreTrainedTokenizerFast"}, {"model_max_length", 1 << 30}};
  // llama.cpp's key names: bos, eos, unknown, padding.
  for (const auto& [role, gguf_role] : {std::pair<const char*, const char*>{"bos", "bos"},
                                        {"eos", "eos"},
                                        {"pad", "padding"},
                                        {"unk", "unknown"}}) {
    const std::string key = str("tokenizer.ggml.", gguf_role, "_token_id");
    if (file.find(key) != nullptr) config[str(role, "_token")] = token_at(file, file.integer(key));
  }
  if (const GgufValue* add_bos = file.find("tokenizer.ggml.add_bos_token")) {
    if (const bool* flag = std::get_if<bool>(&add_bos->value)) config["add_bos_token"] = *flag;
  }
  if (file.find("tokenizer.chat_template") != nullptr) {
    config["chat_template"] = file.string("tokenizer.chat_template");
  }
  return config.dump(2) + "\n";
}

}  // namespace stunt::io
