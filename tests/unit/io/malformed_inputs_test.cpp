// Every input of tests/data/malformed/manifest.json must be refused with the error class and
// the cause the manifest names (the CLI side is tests/integration/test_malformed.py).
#include <nlohmann/json.hpp>

#include "stunt/core/error.h"
#include "stunt/io/checkpoint.h"
#include "stunt/recipe/recipe.h"
#include "test_util.h"

namespace stunt {
namespace {

namespace fs = std::filesystem;

const fs::path kCorpus = fs::path(STUNT_TEST_DATA_DIR) / "malformed";

struct Case {
  std::string file, kind, error, message;
};

void PrintTo(const Case& c, std::ostream* os) { *os << c.file; }

std::vector<Case> load_cases() {
  const auto manifest = nlohmann::json::parse(test::read_text(kCorpus / "manifest.json"));
  std::vector<Case> cases;
  for (const auto& c : manifest) {
    cases.push_back({c["file"], c["kind"], c["error"], c["message"]});
  }
  return cases;
}

bool is_class(const Error& e, const std::string& name) {
  if (name == "FormatError") return dynamic_cast<const FormatError*>(&e) != nullptr;
  if (name == "IoError")
    return dynamic_cast<const IoError*>(&e) != nullptr &&
           dynamic_cast<const FormatError*>(&e) == nullptr;
  if (name == "RecipeError") return dynamic_cast<const RecipeError*>(&e) != nullptr;
  return false;
}

class MalformedInput : public testing::TestWithParam<Case> {};

TEST_P(MalformedInput, IsRefusedWithItsErrorClassAndCause) {
  const Case& c = GetParam();
  const fs::path path = kCorpus / c.file;
  try {
    if (c.kind == "recipe") {
      recipe::load_recipe(path);
    } else {
      auto checkpoint = io::Checkpoint::open(path);
      for (const auto& e : checkpoint->entries()) checkpoint->load(e.name);
    }
    FAIL() << c.file << ": accepted, expected " << c.error << " '" << c.message << "'";
  } catch (const Error& e) {
    EXPECT_TRUE(is_class(e, c.error)) << c.file << ": wrong class for: " << e.what();
    EXPECT_NE(std::string(e.what()).find(c.message), std::string::npos)
        << c.file << ": message does not name the cause: " << e.what();
    // The message names the file it is about.
    EXPECT_NE(std::string(e.what()).find(c.file), std::string::npos) << e.what();
  }
}

INSTANTIATE_TEST_SUITE_P(Corpus, MalformedInput, testing::ValuesIn(load_cases()),
                         [](const testing::TestParamInfo<Case>& info) {
                           std::string name = info.param.file;
                           for (auto& ch : name) {
                             if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
                           }
                           return name;
                         });

TEST(MalformedCorpus, HasAtLeastThirtyCases) { EXPECT_GE(load_cases().size(), 30u); }

}  // namespace
}  // namespace stunt
