#pragma once
// Reading dataset files line by line with a bounded buffer, and the records of a JSONL file.
// Private to src/io (dataset.cpp, dataset_windows.cpp).

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "stunt/io/dataset.h"

namespace stunt::io::dataset_detail {

/// A line longer than this is refused rather than buffered (bytes): no real sample is this
/// long, and a binary file given by mistake must not exhaust memory.
inline constexpr size_t kMaxLineBytes = size_t{64} << 20;

/// Reads a file line by line through a fixed buffer.
class LineReader {
 public:
  explicit LineReader(const std::filesystem::path& path);
  /// The next line without its '\n' (nor a '\r' just before it); false at the end.
  /// `had_newline` says whether the line ended with '\n' (only the last line may not).
  bool next(std::string& line, bool& had_newline);
  /// 1-based number of the line last returned.
  int64_t line_number() const { return line_number_; }
  uint64_t bytes_read() const { return bytes_read_; }
  uint64_t size_bytes() const { return size_bytes_; }
  /// The file's name as given, for messages ("data.jsonl:17: ...").
  const std::string& name() const { return name_; }

 private:
  bool fill();
  std::ifstream in_;
  std::string name_;
  std::vector<char> buffer_;
  size_t begin_ = 0, end_ = 0;
  int64_t line_number_ = 0;
  uint64_t bytes_read_ = 0, size_bytes_ = 0;
  bool eof_ = false;
};

/// One record of a JSONL file.
struct JsonlRecord {
  std::optional<std::string> text;
  std::optional<std::vector<int64_t>> input_ids;
  std::optional<int64_t> label;
};

/// Parses line `line_number` of `file`; ids must be in [0, vocab_size).
JsonlRecord parse_jsonl_record(std::string_view line, const std::string& file, int64_t line_number,
                               int64_t vocab_size);

/// True when `text` is empty or only whitespace as Python's str.isspace() sees it.
bool is_blank(std::string_view text);

/// Jsonl or Lines for `format` and the file's extension.
DatasetFormat resolve_format(DatasetFormat format, const std::filesystem::path& path);

/// The rows of a file for window mode (see dataset.h): lines as the HF wikitext builder reads
/// them, or the "text" of JSONL records.
class RowReader {
 public:
  RowReader(const std::filesystem::path& path, DatasetFormat format);
  /// The next row; false at the end.
  bool next(std::string& row);
  const LineReader& lines() const { return lines_; }

 private:
  LineReader lines_;
  DatasetFormat format_;
  std::string line_;
};

}  // namespace stunt::io::dataset_detail
