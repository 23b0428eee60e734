// Training examples from `compress label` folders that store what the teacher said about each
// item (its embedding, its generation) but not the item's text: the texts come back from the
// corpus the manifest names, through the template and tokenizer settings the labelling used.
#include "detail/label_records.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <filesystem>
#include <functional>
#include <optional>

#include "stunt/core/error.h"
#include "stunt/core/logging.h"
#include "stunt/core/sha256.h"
#include "stunt/core/strings.h"
#include "stunt/io/dataset.h"
#include "stunt/pseudolabel/corpus.h"
#include "stunt/pseudolabel/label_set.h"

namespace stunt::recipe::detail {
namespace {

/// Calls `fn(corpus item, labelled item)` for every item of the label folder of `kind`, in
/// order. Returns the manifest.
pseudolabel::Manifest for_each_labelled_text(
    const TrainingRunOptions& options, const std::string& kind, const char* what,
    const std::function<void(const pseudolabel::CorpusItem&, const pseudolabel::LabeledItem&)>&
        fn) {
  const std::string where = str("--labels ", options.labels.string());
  STUNT_CHECK_AS(ValueError, options.tokenizer != nullptr, where, ": ", what,
                 " reads text, which needs the model's tokenizer");
  const pseudolabel::LabelSet labels(options.labels);
  const pseudolabel::Manifest& manifest = labels.manifest();
  STUNT_CHECK_AS(ValueError, manifest.kind == kind, where, ": labels of kind '", manifest.kind,
                 "'; ", what, " learns from compress label --kind ", kind);
  const std::filesystem::path corpus = manifest.input.value("path", std::string());
  STUNT_CHECK_AS(ValueError, std::filesystem::exists(corpus), where,
                 ": the labels keep what the teacher said, not the texts, and the corpus they "
                 "were made from (",
                 corpus.string(), ") is not there; run from the folder the labelling ran in");
  STUNT_CHECK_AS(ValueError, sha256_file(corpus) == manifest.input.value("sha256", ""), where, ": ",
                 corpus.string(),
                 " changed since it was labelled; the texts would not match their labels. "
                 "Relabel it");
  pseudolabel::CorpusOptions read;
  read.prompt_template = manifest.settings.value("template", std::string("{text}"));
  read.format = manifest.settings.value("format", std::string("lines")) == "jsonl"
                    ? pseudolabel::CorpusFormat::Jsonl
                    : pseudolabel::CorpusFormat::Lines;
  read.id_field = manifest.settings.value("id_field", std::string("id"));
  pseudolabel::CorpusReader reader(corpus, read);
  std::optional<pseudolabel::CorpusItem> item = reader.next();
  labels.for_each([&](const pseudolabel::LabeledItem& labeled) {
    const int64_t index = labeled.record.value("index", int64_t{-1});
    while (item && item->index < index) item = reader.next();
    STUNT_CHECK_AS(FormatError, item && item->index == index, where, ": item ", index,
                   " is not in ", corpus.string());
    fn(*item, labeled);
  });
  return manifest;
}

std::string labels_fingerprint(const pseudolabel::Manifest& manifest, int64_t seq_len) {
  return str("labels ", manifest.input.value("sha256", ""), " ",
             manifest.teacher.value("sha256", ""), " ", seq_len);
}

}  // namespace

int64_t pad_id_of(const io::Tokenizer& tokenizer) {
  return tokenizer.pad_id().value_or(tokenizer.eos_id().value_or(0));
}

train::SentenceEmbeddingData label_embedding_records(const TrainingRunOptions& options) {
  std::vector<train::EmbeddingExample> examples;
  const bool special =
      pseudolabel::Manifest::read(options.labels).settings.value("add_special_tokens", true);
  const pseudolabel::Manifest manifest = for_each_labelled_text(
      options, "embed", "sentence-embedding training",
      [&](const pseudolabel::CorpusItem& item, const pseudolabel::LabeledItem& labeled) {
        const at::Tensor target = labeled.tensors.at("embeddings").to(at::kFloat).contiguous();
        train::EmbeddingExample e;
        e.line = item.line;
        e.text = io::encode_truncated(*options.tokenizer, item.text, options.seq_len, special);
        e.target.assign(target.data_ptr<float>(), target.data_ptr<float>() + target.numel());
        examples.push_back(std::move(e));
      });
  log::info("training data: ", examples.size(), " texts of ",
            manifest.input.value("path", std::string()), " with the teacher's embeddings from ",
            options.labels.string());
  return train::SentenceEmbeddingData(std::move(examples), pad_id_of(*options.tokenizer),
                                      options.labels.string(),
                                      labels_fingerprint(manifest, options.seq_len));
}

train::CompletionData label_generation_records(const TrainingRunOptions& options) {
  const pseudolabel::Manifest header = pseudolabel::Manifest::read(options.labels);
  const bool special = header.settings.value("add_special_tokens", true);
  const int64_t max_new_tokens =
      header.settings.contains("generation")
          ? header.settings["generation"].value("max_new_tokens", int64_t{0})
          : int64_t{0};
  const io::Tokenizer& tokenizer = *options.tokenizer;
  std::vector<train::Completion> examples;
  int64_t ended = 0, empty = 0;
  const pseudolabel::Manifest manifest = for_each_labelled_text(
      options, "generate", "sequence-level distillation",
      [&](const pseudolabel::CorpusItem& item, const pseudolabel::LabeledItem& labeled) {
        train::Completion c;
        c.completion = tokenizer.encode(labeled.record.value("generation", std::string()),
                                        /*add_special_tokens=*/false);
        const auto teacher_tokens = labeled.record.value("tokens", std::vector<int64_t>());
        const bool stopped = static_cast<int64_t>(teacher_tokens.size()) < max_new_tokens;
        if (stopped && tokenizer.eos_id()) {
          c.completion.push_back(*tokenizer.eos_id());
          ++ended;
        }
        if (c.completion.empty()) {
          ++empty;
          return;
        }
        if (static_cast<int64_t>(c.completion.size()) > options.seq_len - 1) {
          c.completion.resize(static_cast<size_t>(std::max<int64_t>(1, options.seq_len - 1)));
        }
        c.prompt = tokenizer.encode(item.text, special);
        const int64_t room = options.seq_len - static_cast<int64_t>(c.completion.size());
        if (static_cast<int64_t>(c.prompt.size()) > room) {
          c.prompt.erase(c.prompt.begin(), c.prompt.end() - room);
        }
        examples.push_back(std::move(c));
      });
  log::info("training data: ", examples.size(), " prompts of ",
            manifest.input.value("path", std::string()), " with the teacher's generations from ",
            options.labels.string(), " (", ended, " ended on their own, eos added",
            empty > 0 ? str("; ", empty, " empty generations skipped") : std::string(), ")");
  return train::CompletionData(std::move(examples), pad_id_of(tokenizer), options.labels.string(),
                               str("generations ", labels_fingerprint(manifest, options.seq_len)),
                               options.prompt_loss);
}

train::Seq2SeqData label_seq2seq_records(const TrainingRunOptions& options, int64_t decoder_start) {
  const bool special =
      pseudolabel::Manifest::read(options.labels).settings.value("add_special_tokens", true);
  const io::Tokenizer& tokenizer = *options.tokenizer;
  std::vector<train::Seq2SeqExample> examples;
  const pseudolabel::Manifest manifest = for_each_labelled_text(
      options, "generate", "sequence-level distillation",
      [&](const pseudolabel::CorpusItem& item, const pseudolabel::LabeledItem& labeled) {
        train::Seq2SeqExample e;
        e.source = io::encode_truncated(tokenizer, item.text, options.seq_len, special);
        e.target = io::encode_truncated(
            tokenizer, labeled.record.value("generation", std::string()), options.seq_len);
        e.line = item.line;
        examples.push_back(std::move(e));
      });
  log::info("training data: ", examples.size(), " prompts of ",
            manifest.input.value("path", std::string()), " with the teacher's generations from ",
            options.labels.string(), " as targets");
  return train::Seq2SeqData(std::move(examples), pad_id_of(tokenizer), decoder_start,
                            options.labels.string(),
                            str("generations ", labels_fingerprint(manifest, options.seq_len)));
}

}  // namespace stunt::recipe::detail
