#pragma once
// Token ↔ id tables shared by the models.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "pipeline.h"

namespace stunt::io::tokenizer_detail {

class Vocab {
 public:
  /// Reads a tokenizer.json vocab object {"token": id, ...}; ids must be unique.
  static Vocab from_json_object(const JsonNode& node);
  /// Adds token with the next id (for ordered lists: Unigram pieces).
  void push_back(std::string token);
  std::optional<int64_t> find(std::string_view token) const {
    lookup_.assign(token.data(), token.size());
    auto it = ids_.find(lookup_);
    if (it == ids_.end()) return std::nullopt;
    return it->second;
  }
  std::string_view token(int64_t id) const {
    return id >= 0 && static_cast<size_t>(id) < tokens_.size() ? std::string_view(tokens_[id])
                                                               : std::string_view();
  }
  int64_t size() const { return static_cast<int64_t>(tokens_.size()); }

 private:
  std::unordered_map<std::string, int64_t> ids_;
  std::vector<std::string> tokens_;
  static thread_local std::string lookup_;
};

}  // namespace stunt::io::tokenizer_detail
