#include "stunt/pseudolabel/corpus.h"

#include <gtest/gtest.h>

#include "stunt/core/error.h"
#include "test_util.h"

namespace stunt::pseudolabel {
namespace {

TEST(PromptTemplate, FillsFieldsAndReadsEscapes) {
  const PromptTemplate t("Title: {title}\\nBody: {text}{{raw}} {title}\\t!");
  EXPECT_EQ(t.fields(), (std::vector<std::string>{"title", "text"}));
  const nlohmann::json record = {{"title", "Cup final"}, {"text", "A goal."}, {"n", 3}};
  EXPECT_EQ(t.fill(record, "f:1"), "Title: Cup final\nBody: A goal.{raw} Cup final\t!");
  EXPECT_EQ(PromptTemplate("{n} goals").fill(record, "f:1"), "3 goals");
}

TEST(PromptTemplate, RefusesWhatIsNotATemplate) {
  EXPECT_THROW(PromptTemplate("no field"), ValueError);
  EXPECT_THROW(PromptTemplate("{text"), ValueError);
  EXPECT_THROW(PromptTemplate("text}"), ValueError);
  EXPECT_THROW(PromptTemplate("{}"), ValueError);
  const PromptTemplate t("{title}");
  try {
    t.fill({{"text", "x"}}, "news.jsonl:7");
    FAIL() << "expected a ValueError";
  } catch (const ValueError& e) {
    EXPECT_NE(std::string(e.what()).find("news.jsonl:7: the record has no field \"title\""),
              std::string::npos)
        << e.what();
  }
  EXPECT_THROW(t.fill({{"title", nlohmann::json::array()}}, "f:1"), ValueError);
}

TEST(CorpusReader, StreamsItemsSkippingBlankLinesAndKeepsIds) {
  test::TempDir dir;
  test::write_text(dir / "c.jsonl",
                   "{\"id\": \"a\", \"text\": \"one\", \"ref\": \"R\"}\n\n  \n"
                   "{\"text\": \"two\", \"ref\": \"S\"}\r\n");
  CorpusOptions options;
  options.prompt_template = "<{text}>";
  options.reference_field = "ref";
  CorpusReader reader(dir / "c.jsonl", options);
  auto first = reader.next();
  auto second = reader.next();
  ASSERT_TRUE(first && second);
  EXPECT_FALSE(reader.next());
  EXPECT_EQ(first->id, "a");
  EXPECT_EQ(first->text, "<one>");
  EXPECT_EQ(*first->reference, "R");
  EXPECT_EQ(second->index, 1);
  EXPECT_EQ(second->id, "1");  // no id field: the item's index
  EXPECT_EQ(second->line, 4);
  EXPECT_EQ(second->text, "<two>");

  test::write_text(dir / "lines.txt", "first line\r\n\nsecond\n");
  CorpusReader lines(dir / "lines.txt", CorpusOptions{});
  EXPECT_EQ(lines.next()->text, "first line");
  EXPECT_EQ(lines.next()->text, "second");
  EXPECT_FALSE(lines.next());

  test::write_text(dir / "bad.jsonl", "{\"text\": \"ok\"}\n[1, 2]\n");
  CorpusReader bad(dir / "bad.jsonl", CorpusOptions{});
  bad.next();
  EXPECT_THROW(bad.next(), FormatError);
}

}  // namespace
}  // namespace stunt::pseudolabel
