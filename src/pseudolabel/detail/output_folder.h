#pragma once
// The label folder a job writes into: refusing foreign files and other jobs' labels, clearing a
// killed run's temporaries, and finding the shards a rerun keeps.

#include "stunt/pseudolabel/label_set.h"
#include "stunt/pseudolabel/labeler.h"

namespace stunt::pseudolabel::detail {

/// Prepares the output folder; returns this part's manifest with the shards already finished
/// (a prefix of the part's shards), or `fresh` when there are none. ValueError naming what
/// differs when the folder holds another job's labels, or files that are not labels.
Manifest open_output(const LabelJob& job, const Manifest& fresh);

}  // namespace stunt::pseudolabel::detail
