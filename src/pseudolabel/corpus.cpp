#include "stunt/pseudolabel/corpus.h"

#include <algorithm>

#include "stunt/core/error.h"
#include "stunt/core/strings.h"

namespace stunt::pseudolabel {

PromptTemplate::PromptTemplate(const std::string& spec) : spec_(spec) {
  std::string literal;
  auto flush = [&] {
    if (!literal.empty()) pieces_.push_back({literal, ""});
    literal.clear();
  };
  for (size_t i = 0; i < spec.size(); ++i) {
    const char c = spec[i];
    if (c == '\\' && i + 1 < spec.size() && (spec[i + 1] == 'n' || spec[i + 1] == 't')) {
      literal.push_back(spec[i + 1] == 'n' ? '\n' : '\t');
      ++i;
    } else if ((c == '{' || c == '}') && i + 1 < spec.size() && spec[i + 1] == c) {
      literal.push_back(c);
      ++i;
    } else if (c == '{') {
      const size_t close = spec.find('}', i);
      STUNT_CHECK_AS(ValueError, close != std::string::npos, "template \"", spec,
                     "\": the brace at character ", i,
                     " is not closed; write {field} for a field, {{ for a brace");
      const std::string field = spec.substr(i + 1, close - i - 1);
      STUNT_CHECK_AS(ValueError, !field.empty() && field.find('{') == std::string::npos,
                     "template \"", spec, "\": \"{", field, "}\" is not a field name");
      flush();
      pieces_.push_back({"", field});
      if (std::find(fields_.begin(), fields_.end(), field) == fields_.end()) {
        fields_.push_back(field);
      }
      i = close;
    } else {
      STUNT_CHECK_AS(ValueError, c != '}', "template \"", spec, "\": the brace at character ", i,
                     " closes nothing; write }} for a brace");
      literal.push_back(c);
    }
  }
  flush();
  STUNT_CHECK_AS(ValueError, !fields_.empty(), "template \"", spec,
                 "\" inserts nothing from the item; put {text} (or a JSONL field, {title}) "
                 "where the item goes");
}

std::string PromptTemplate::fill(const nlohmann::json& record, const std::string& where) const {
  std::string out;
  for (const Piece& piece : pieces_) {
    if (piece.field.empty()) {
      out += piece.literal;
      continue;
    }
    const auto found = record.find(piece.field);
    STUNT_CHECK_AS(ValueError, found != record.end(), where, ": the record has no field \"",
                   piece.field, "\", which the template \"", spec_, "\" reads");
    if (found->is_string()) {
      out += found->get<std::string>();
    } else {
      STUNT_CHECK_AS(ValueError, found->is_number() || found->is_boolean(), where, ": field \"",
                     piece.field, "\" is ", found->type_name(),
                     "; a template inserts strings, numbers or booleans");
      out += found->dump();
    }
  }
  return out;
}

CorpusFormat resolve_format(const std::filesystem::path& path, CorpusFormat format) {
  if (format != CorpusFormat::Auto) return format;
  const std::string ext = path.extension().string();
  return ext == ".jsonl" || ext == ".ndjson" ? CorpusFormat::Jsonl : CorpusFormat::Lines;
}

const char* to_string(CorpusFormat format) {
  switch (format) {
    case CorpusFormat::Auto:
      return "auto";
    case CorpusFormat::Lines:
      return "lines";
    case CorpusFormat::Jsonl:
      return "jsonl";
  }
  return "?";
}

CorpusReader::CorpusReader(const std::filesystem::path& path, const CorpusOptions& options)
    : path_(path),
      options_(options),
      format_(resolve_format(path, options.format)),
      template_(options.prompt_template),
      in_(path, std::ios::binary) {
  STUNT_CHECK_AS(IoError, std::filesystem::is_regular_file(path) && in_.good(), path.string(),
                 ": the corpus cannot be read (expected a text or JSONL file)");
  if (format_ == CorpusFormat::Lines) {
    for (const std::string& field : template_.fields()) {
      STUNT_CHECK_AS(ValueError, field == "text", "template \"", template_.spec(), "\" reads {",
                     field, "}, but ", path.string(),
                     " is read as text lines, which have only {text}; give a JSONL corpus for "
                     "named fields");
    }
    STUNT_CHECK_AS(ValueError, options.reference_field.empty(), "a reference field (\"",
                   options.reference_field, "\") needs a JSONL corpus; ", path.string(),
                   " is read as text lines");
    STUNT_CHECK_AS(ValueError, options.stratum_field.empty(), "a stratum field (\"",
                   options.stratum_field, "\") needs a JSONL corpus; ", path.string(),
                   " is read as text lines");
  }
}

std::optional<CorpusItem> CorpusReader::next() {
  std::string text;
  while (std::getline(in_, text)) {
    ++line_;
    if (!text.empty() && text.back() == '\r') text.pop_back();
    if (text.find_first_not_of(" \t\r\f\v") == std::string::npos) continue;
    CorpusItem item;
    item.index = index_++;
    item.line = line_;
    const std::string where = str(path_.string(), ":", line_);
    if (format_ == CorpusFormat::Lines) {
      item.id = std::to_string(item.index);
      item.text = template_.fill(nlohmann::json{{"text", text}}, where);
      return item;
    }
    nlohmann::json record;
    try {
      record = nlohmann::json::parse(text);
    } catch (const nlohmann::json::exception& e) {
      throw FormatError(str(where, ": not valid JSON (", e.what(),
                            "); a JSONL corpus holds one JSON object per line"));
    }
    STUNT_CHECK_AS(FormatError, record.is_object(), where, ": a ", record.type_name(),
                   ", not a JSON object; a JSONL corpus holds one object per line");
    item.text = template_.fill(record, where);
    const auto id = record.find(options_.id_field);
    if (id != record.end() && !id->is_null()) {
      item.id = id->is_string() ? id->get<std::string>() : id->dump();
    } else {
      item.id = std::to_string(item.index);
    }
    if (!options_.reference_field.empty()) {
      const auto ref = record.find(options_.reference_field);
      STUNT_CHECK_AS(ValueError, ref != record.end() && ref->is_string(), where,
                     ": no string field \"", options_.reference_field,
                     "\" (the reference field asked for)");
      item.reference = ref->get<std::string>();
    }
    if (!options_.stratum_field.empty()) {
      const auto stratum = record.find(options_.stratum_field);
      STUNT_CHECK_AS(ValueError, stratum != record.end() && !stratum->is_null(), where,
                     ": no field \"", options_.stratum_field, "\" (the stratum field asked for)");
      item.stratum = stratum->is_string() ? stratum->get<std::string>() : stratum->dump();
    }
    return item;
  }
  STUNT_CHECK_AS(IoError, in_.eof(), path_.string(), ": read failed after line ", line_);
  return std::nullopt;
}

}  // namespace stunt::pseudolabel
