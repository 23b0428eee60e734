#include "stunt/io/json_keys.h"

#include <nlohmann/json.hpp>
#include <unordered_set>
#include <vector>

namespace stunt::io {
namespace {

class DuplicateKeyFinder : public nlohmann::json::json_sax_t {
 public:
  std::optional<std::string> duplicate;

  bool null() override { return true; }
  bool boolean(bool) override { return true; }
  bool number_integer(number_integer_t) override { return true; }
  bool number_unsigned(number_unsigned_t) override { return true; }
  bool number_float(number_float_t, const string_t&) override { return true; }
  bool string(string_t&) override { return true; }
  bool binary(binary_t&) override { return true; }
  bool start_object(std::size_t) override {
    keys_.emplace_back();
    return true;
  }
  bool key(string_t& key) override {
    if (!keys_.back().insert(key).second) {
      duplicate = key;
      return false;  // stop at the first one
    }
    return true;
  }
  bool end_object() override {
    keys_.pop_back();
    return true;
  }
  bool start_array(std::size_t) override { return true; }
  bool end_array() override { return true; }
  bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception&) override {
    return false;
  }

 private:
  std::vector<std::unordered_set<std::string>> keys_;
};

}  // namespace

std::optional<std::string> find_duplicate_json_key(std::string_view json_text) {
  DuplicateKeyFinder finder;
  nlohmann::json::sax_parse(json_text.begin(), json_text.end(), &finder,
                            nlohmann::json::input_format_t::json, /*strict=*/false);
  return finder.duplicate;
}

}  // namespace stunt::io
