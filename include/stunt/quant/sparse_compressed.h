#pragma once
/// The legacy compressed-tensors sparse layouts (compressed-tensors up to 0.14; 0.15 removed
/// them, and vLLM its 2:4 paths): pruned weights stored as their kept values plus a bitmask of
/// where they were, for the storage saving. Stunt writes them on request and reads them back.
///
/// Per compressed layer `m` (FORMATS.md):
/// - sparse-bitmask: `m.compressed` the nonzero values in row-major order (1-D, the weight's
///   dtype), `m.bitmask` uint8 [rows, ceil(cols/8)] (bit j%8 of byte j/8 is column j, least
///   significant first), `m.shape` int64 [2], `m.row_offsets` int64 [rows] (where each row's
///   values start);
/// - sparse-24-bitmask: `m.compressed` [rows, cols/2] (the 2 kept values of every group of 4,
///   in order), `m.bitmask` as above with exactly 2 bits per group, `m.shape` int64 [2, 1].
/// config.json's quantization_config then holds a `sparsity_config` (format, targets: the
/// compressed layers, global_sparsity, sparsity_structure).

#include <filesystem>
#include <string>
#include <vector>

#include "stunt/io/checkpoint.h"
#include "stunt/model/hf_model.h"

namespace stunt::quant {

enum class SparseFormat { Dense, Bitmask, Bitmask24 };
/// "dense", "sparse-bitmask", "sparse-24-bitmask"; throws ValueError for anything else.
SparseFormat parse_sparse_format(const std::string& name);
const char* to_string(SparseFormat format);

/// The layer tensors of one weight [rows, cols] in `format` (Bitmask or Bitmask24), keyed by
/// leaf name ("compressed", "bitmask", "shape", "row_offsets"). Bitmask24 needs at most 2
/// nonzeros in every group of 4 along each row (and cols a multiple of 4): throws ValueError
/// naming `layer` otherwise.
std::vector<std::pair<std::string, at::Tensor>> compress_sparse_weight(const at::Tensor& weight,
                                                                       SparseFormat format,
                                                                       const std::string& layer);
/// The dense weight back from compress_sparse_weight()'s tensors.
at::Tensor decompress_sparse_weight(const at::Tensor& compressed, const at::Tensor& bitmask,
                                    const at::Tensor& shape, const std::string& layer);

/// Saves `model` (unquantized, usually pruned) as save() does, with every linear layer inside
/// its blocks that the format stores smaller compressed (sparse-24-bitmask: those that follow
/// 2:4), and the sparsity_config. Returns how many layers were compressed.
int save_sparse_compressed(const model::HfModel& model, SparseFormat format,
                           const std::filesystem::path& folder);

/// A checkpoint view of a folder saved by save_sparse_compressed (or by compressed-tensors up
/// to 0.14) whose compressed layers read as dense `<m>.weight` tensors.
std::unique_ptr<io::Checkpoint> sparse_decompressing_checkpoint(std::unique_ptr<io::Checkpoint> raw,
                                                                const std::string& source);

}  // namespace stunt::quant
