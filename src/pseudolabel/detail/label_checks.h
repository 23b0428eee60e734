#pragma once
// What label_corpus refuses before it reads or writes anything: options that contradict each
// other and a teacher that cannot produce the requested kind.

#include "stunt/model/hf_model.h"
#include "stunt/pseudolabel/labeler.h"

namespace stunt::pseudolabel::detail {

/// Whether the job generates (generate, or logits of the teacher's generation).
bool generates(const LabelOptions& o);

/// ValueError naming the option and the fix for settings that cannot run, or a teacher that
/// cannot do the job's kind.
void check_label_job(model::HfModel& teacher, const LabelJob& job);

}  // namespace stunt::pseudolabel::detail
