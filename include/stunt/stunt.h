#pragma once
/// Stunt's public API in one include: `#include <stunt/stunt.h>` and link stunt::stunt.

#include "stunt/core/atomic_file.h"
#include "stunt/core/error.h"
#include "stunt/core/logging.h"
#include "stunt/core/progress.h"
#include "stunt/core/version.h"
#include "stunt/io/checkpoint.h"
#include "stunt/io/hf_folder.h"
#include "stunt/io/inspect.h"
#include "stunt/io/safetensors.h"
#include "stunt/io/safetensors_index.h"
#include "stunt/kernels/count_zeros.h"
#include "stunt/kernels/cuda_device.h"
#include "stunt/kernels/hessian.h"
#include "stunt/kernels/quantize.h"
#include "stunt/prune/magnitude.h"
#include "stunt/prune/mask.h"
#include "stunt/prune/parameter_masks.h"
#include "stunt/prune/sparsegpt.h"
#include "stunt/prune/structure.h"
#include "stunt/prune/wanda.h"
#include "stunt/quant/compressed_tensors.h"
#include "stunt/quant/gptq.h"
#include "stunt/quant/observer.h"
#include "stunt/quant/qparams.h"
#include "stunt/quant/quant_args.h"
#include "stunt/quant/quantization_plan.h"
#include "stunt/quant/sparse_compressed.h"
#include "stunt/recipe/compress.h"
#include "stunt/recipe/modifier.h"
#include "stunt/recipe/oneshot.h"
#include "stunt/recipe/recipe.h"
#include "stunt/recipe/registry.h"

namespace stunt {
/// Opens any model Stunt runs: Hugging Face folders (dense or compressed-tensors), GGUF files.
using quant::load_model;
}  // namespace stunt
