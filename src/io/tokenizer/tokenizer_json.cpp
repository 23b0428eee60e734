// Reads a Hugging Face tokenizer.json and assembles the pipeline.
#include "detail/tokenizer_impl.h"
#include "stunt/core/error.h"

namespace stunt::io::tokenizer_detail {
namespace {

using nlohmann::json;

// The special ids the post-processor puts before and after a single sequence.
void read_post_processor(const JsonNode& node, TokenizerImpl& impl) {
  const std::string type = node.at("type").as_string();
  if (type == "ByteLevel") return;  // offsets only
  if (type == "TemplateProcessing") {
    const JsonNode single = node.at("single");
    const JsonNode specials = node.at("special_tokens");
    bool seen_sequence = false;
    for (size_t i = 0; i < single.size(); ++i) {
      const JsonNode item = single.at(i);
      if (item.find("Sequence")) {
        seen_sequence = true;
        continue;
      }
      const std::string name = item.at("SpecialToken").at("id").as_string();
      auto special = specials.find(name);
      if (!special)
        specials.fail(str("has no entry \"", printable(name), "\" used by ", item.path()));
      const JsonNode ids = special->at("ids");
      for (size_t k = 0; k < ids.size(); ++k) {
        (seen_sequence ? impl.suffix_ids : impl.prefix_ids).push_back(ids.at(k).as_int());
      }
    }
    return;
  }
  if (type == "BertProcessing" || type == "RobertaProcessing") {
    impl.prefix_ids.push_back(node.at("cls").at(size_t{1}).as_int());
    impl.suffix_ids.push_back(node.at("sep").at(size_t{1}).as_int());
    return;
  }
  if (type == "Sequence") {
    const JsonNode list = node.at("processors");
    for (size_t i = 0; i < list.size(); ++i) read_post_processor(list.at(i), impl);
    return;
  }
  node.at("type").fail(str("\"", type,
                           "\" is not supported; supported: TemplateProcessing, "
                           "BertProcessing, RobertaProcessing, ByteLevel, Sequence"));
}

// Older files omit model.type; HF then tells the models apart by their fields.
std::string model_type(const JsonNode& model) {
  if (auto type = model.find("type")) return type->as_string();
  if (model.find("merges")) return "BPE";
  if (model.find("vocab") && model.at("vocab").value().is_array()) return "Unigram";
  if (model.find("continuing_subword_prefix") || model.find("max_input_chars_per_word"))
    return "WordPiece";
  model.fail("has no \"type\" and its fields match none of BPE, WordPiece, Unigram");
}

}  // namespace

std::shared_ptr<TokenizerImpl> load_tokenizer_json(const std::filesystem::path& path) {
  return parse_tokenizer_json(read_file_bytes(path), path.string());
}

std::shared_ptr<TokenizerImpl> parse_tokenizer_json(const std::string& bytes,
                                                    const std::string& file) {
  json root;
  try {
    root = json::parse(bytes);
  } catch (const json::exception& e) {
    throw FormatError(str(file, ": not valid JSON (", e.what(), ")"));
  }
  auto impl = std::make_shared<TokenizerImpl>();
  impl->source = file;
  const JsonNode top(root, "", impl->source);
  if (!root.is_object()) top.fail(str("must be a JSON object, got ", root.type_name()));

  const JsonNode model = top.at("model");
  const std::string type = model_type(model);
  if (type == "WordPiece") {
    impl->model = make_wordpiece(model);
  } else if (type == "BPE") {
    impl->model = make_bpe(model);
  } else if (type == "Unigram") {
    impl->model = make_unigram(model);
  } else {
    model.at("type").fail(
        str("\"", type, "\" is not supported; supported: BPE, WordPiece, Unigram"));
  }
  if (auto node = top.find("normalizer")) impl->normalizer = make_normalizer(*node);
  if (auto node = top.find("pre_tokenizer")) impl->pre_tokenizer = make_pre_tokenizer(*node);
  if (auto node = top.find("post_processor")) read_post_processor(*node, *impl);
  if (auto node = top.find("decoder")) impl->decoder = make_decoder(*node);
  if (auto list = top.find("added_tokens")) {
    for (size_t i = 0; i < list->size(); ++i) {
      const JsonNode entry = list->at(i);
      AddedToken token;
      token.id = entry.at("id").as_int();
      token.content = entry.at("content").as_string();
      if (token.content.empty()) entry.at("content").fail("must not be empty");
      token.special = entry.get_bool("special", false);
      token.lstrip = entry.get_bool("lstrip", false);
      token.rstrip = entry.get_bool("rstrip", false);
      token.single_word = entry.get_bool("single_word", false);
      token.normalized = entry.get_bool("normalized", !token.special);
      impl->added_tokens.push_back(std::move(token));
    }
  }
  if (auto padding = top.find("padding")) {
    if (auto pad = padding->find("pad_id")) impl->pad_id = pad->as_int();
  }
  impl->index_added_tokens();
  impl->guess_special_ids();
  return impl;
}

}  // namespace stunt::io::tokenizer_detail
