#pragma once
/// The unlabeled corpus a teacher labels: text lines or JSONL records, streamed one item at a
/// time (never read whole), each turned into the teacher's input through a template.

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace stunt::pseudolabel {

/// A prompt template: literal text with `{field}` placeholders (`{{` and `}}` for braces;
/// `\n` and `\t` written as two characters are read as newline and tab, so a shell's single
/// quotes can carry them). `{text}` alone is the default.
class PromptTemplate {
 public:
  /// Throws ValueError naming the template for an unclosed brace or no placeholder at all.
  explicit PromptTemplate(const std::string& spec = "{text}");
  /// The template filled from a JSONL record: strings as they are, numbers and booleans as JSON
  /// writes them. ValueError naming `where` (file:line) for a missing or non-scalar field.
  std::string fill(const nlohmann::json& record, const std::string& where) const;
  /// The fields the template reads, in order of first use.
  const std::vector<std::string>& fields() const { return fields_; }
  const std::string& spec() const { return spec_; }

 private:
  struct Piece {
    std::string literal;  // when field is empty
    std::string field;
  };
  std::string spec_;
  std::vector<Piece> pieces_;
  std::vector<std::string> fields_;
};

enum class CorpusFormat { Auto, Lines, Jsonl };

struct CorpusOptions {
  /// Auto: Jsonl for *.jsonl and *.ndjson, else Lines.
  CorpusFormat format = CorpusFormat::Auto;
  std::string prompt_template = "{text}";
  /// JSONL: the field kept as the item's id when present (else the id is the item's index).
  std::string id_field = "id";
  /// JSONL: a field holding a reference label (a human summary), kept beside the teacher's.
  std::string reference_field;
  /// JSONL: a field whose value names the item's stratum (its source, its topic).
  std::string stratum_field;
};

/// One item: its position among the corpus's items (0-based, blank lines not counted), its id,
/// the teacher's input text, and the reference when the corpus has one.
struct CorpusItem {
  int64_t index = 0;
  std::string id;
  std::string text;
  std::optional<std::string> reference;
  /// The stratum_field's value, when asked for.
  std::optional<std::string> stratum;
  /// 1-based line in the file, for messages.
  int64_t line = 0;
};

/// Streams a corpus file. Blank lines are not items. Lines: the line (without its newline) is
/// `{text}`. JSONL: each line is an object; a line that is not names the file and line.
class CorpusReader {
 public:
  CorpusReader(const std::filesystem::path& path, const CorpusOptions& options);
  /// The next item, or nothing at the end of the file.
  std::optional<CorpusItem> next();
  CorpusFormat format() const { return format_; }

 private:
  std::filesystem::path path_;
  CorpusOptions options_;
  CorpusFormat format_;
  PromptTemplate template_;
  std::ifstream in_;
  int64_t line_ = 0;
  int64_t index_ = 0;
};

CorpusFormat resolve_format(const std::filesystem::path& path, CorpusFormat format);
const char* to_string(CorpusFormat format);

}  // namespace stunt::pseudolabel
