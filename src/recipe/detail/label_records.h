#pragma once
// Training examples from `compress label` folders whose labels need the corpus's texts again
// (label_records.cpp): embeddings and generations.

#include <cstdint>

#include "stunt/io/tokenizer.h"
#include "stunt/recipe/training.h"
#include "stunt/train/completion_data.h"
#include "stunt/train/sentence_embedding.h"
#include "stunt/train/seq2seq.h"

namespace stunt::recipe::detail {

/// The tokenizer's padding id: pad, else eos, else 0.
int64_t pad_id_of(const io::Tokenizer& tokenizer);

/// Texts with the teacher's embeddings as targets, from a `compress label --kind embed` folder:
/// each labelled item's text is read back from the corpus the manifest names, through the same
/// template and tokenizer settings (refused when the corpus changed since), and cut to seq_len.
train::SentenceEmbeddingData label_embedding_records(const TrainingRunOptions& options);

/// Sequence-level distillation (Kim & Rush 2016) from a `compress label --kind generate` folder:
/// each item's prompt (read back from the corpus, as above) with the teacher's generation as the
/// completion to learn, both in the student's tokenizer (the teacher's may differ), the student's
/// eos after a generation that ended on its own (before max_new_tokens). A prompt is cut from
/// its start so that prompt and completion fit seq_len.
train::CompletionData label_generation_records(const TrainingRunOptions& options);

/// The same for an encoder-decoder student (T5): each prompt as the source and the teacher's
/// generation as the target (with the tokenizer's end of sequence), each cut to seq_len.
train::Seq2SeqData label_seq2seq_records(const TrainingRunOptions& options, int64_t decoder_start);

}  // namespace stunt::recipe::detail
