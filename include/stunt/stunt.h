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
#include "stunt/quant/quant_args.h"
#include "stunt/recipe/modifier.h"
#include "stunt/recipe/recipe.h"
#include "stunt/recipe/registry.h"
