#include "stunt/quant/sparse_compressed.h"

#include <ATen/ATen.h>

#include <map>
#include <set>

#include "stunt/core/error.h"
#include "stunt/core/logging.h"
#include "stunt/io/tensor_dtype.h"
#include "stunt/kernels/sparsity_pattern.h"

namespace stunt::quant {
namespace {

/// Bit j % 8 of byte j / 8 of each row is column j, least significant bit first (numpy's
/// packbits with bitorder="little", as compressed-tensors packs them).
at::Tensor pack_bits(const at::Tensor& bits) {
  const int64_t rows = bits.size(0);
  const int64_t cols = bits.size(1);
  const int64_t bytes = (cols + 7) / 8;
  at::Tensor padded = at::zeros({rows, bytes * 8}, at::kLong);
  padded.narrow(1, 0, cols).copy_(bits);
  const at::Tensor weights = at::pow(2, at::arange(8, at::kLong));
  return (padded.reshape({rows, bytes, 8}) * weights).sum(-1).to(at::kByte);
}

at::Tensor unpack_bits(const at::Tensor& packed, int64_t cols) {
  const at::Tensor bytes = packed.to(at::kLong).unsqueeze(-1);
  const at::Tensor bits =
      at::bitwise_and(at::bitwise_right_shift(bytes, at::arange(8, at::kLong)), 1);
  return bits.reshape({packed.size(0), -1}).narrow(1, 0, cols).to(at::kBool);
}

/// Where a 2:4 weight keeps its values: its nonzeros, topped up with the first zeros of any
/// group holding fewer than 2 so that every group stores exactly 2.
at::Tensor two_of_four_positions(const at::Tensor& weight) {
  const at::Tensor nonzero = (weight != 0).reshape({weight.size(0), -1, 4});
  const at::Tensor missing = 2 - nonzero.sum(-1, /*keepdim=*/true);
  const at::Tensor zero = nonzero.logical_not();
  const at::Tensor zero_rank = zero.to(at::kLong).cumsum(-1);
  const at::Tensor fill = zero.logical_and(zero_rank <= missing);
  return nonzero.logical_or(fill).reshape(weight.sizes());
}

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

class SparseDecompressingCheckpoint final : public io::Checkpoint {
 public:
  SparseDecompressingCheckpoint(std::unique_ptr<io::Checkpoint> raw, const std::string& source)
      : io::Checkpoint(raw->path()), raw_(std::move(raw)), source_(source) {
    std::map<std::string, const io::TensorEntry*> by_name;
    for (const io::TensorEntry& e : raw_->entries()) by_name[e.name] = &e;
    for (const io::TensorEntry& e : raw_->entries()) {
      if (!ends_with(e.name, ".bitmask")) continue;
      const std::string module = e.name.substr(0, e.name.size() - 8);
      for (const char* leaf : {".compressed", ".shape"}) {
        STUNT_CHECK_AS(FormatError, by_name.count(module + leaf) > 0, source, ": ", module,
                       ".bitmask has no ", module, leaf, " beside it");
      }
      modules_.insert(module);
    }
    for (const io::TensorEntry& e : raw_->entries()) {
      const auto dot = e.name.rfind('.');
      const std::string module = dot == std::string::npos ? "" : e.name.substr(0, dot);
      if (!modules_.count(module)) {
        entries_.push_back(e);
        continue;
      }
      if (e.name != module + ".bitmask") continue;
      const at::Tensor shape = raw_->load(module + ".shape").to(at::kLong).flatten();
      STUNT_CHECK_AS(FormatError, shape.numel() == 2, source, ": ", module,
                     ".shape must hold [rows, cols], found ", shape.numel(), " values");
      io::TensorEntry dense = *by_name.at(module + ".compressed");
      dense.name = module + ".weight";
      dense.shape = {shape[0].item<int64_t>(), shape[1].item<int64_t>()};
      dense.numel = static_cast<uint64_t>(dense.shape[0] * dense.shape[1]);
      entries_.push_back(dense);
    }
  }

  io::CheckpointFormat format() const override { return raw_->format(); }
  const std::vector<io::TensorEntry>& entries() const override { return entries_; }
  at::Tensor load(const std::string& name) const override {
    if (ends_with(name, ".weight")) {
      const std::string module = name.substr(0, name.size() - 7);
      if (modules_.count(module)) {
        return decompress_sparse_weight(raw_->load(module + ".compressed"),
                                        raw_->load(module + ".bitmask"),
                                        raw_->load(module + ".shape"), source_ + ": " + module);
      }
    }
    return raw_->load(name);
  }

 private:
  std::unique_ptr<io::Checkpoint> raw_;
  std::string source_;
  std::set<std::string> modules_;
  std::vector<io::TensorEntry> entries_;
};

}  // namespace

SparseFormat parse_sparse_format(const std::string& name) {
  if (name == "dense") return SparseFormat::Dense;
  if (name == "sparse-bitmask") return SparseFormat::Bitmask;
  if (name == "sparse-24-bitmask") return SparseFormat::Bitmask24;
  throw ValueError(str("sparse format '", name,
                       "' is not known; use dense, sparse-bitmask or sparse-24-bitmask"));
}

const char* to_string(SparseFormat format) {
  switch (format) {
    case SparseFormat::Dense:
      return "dense";
    case SparseFormat::Bitmask:
      return "sparse-bitmask";
    case SparseFormat::Bitmask24:
      return "sparse-24-bitmask";
  }
  return "?";
}

std::vector<std::pair<std::string, at::Tensor>> compress_sparse_weight(const at::Tensor& weight,
                                                                       SparseFormat format,
                                                                       const std::string& layer) {
  STUNT_CHECK_AS(ValueError, weight.dim() == 2, layer, ": sparse formats store 2-D weights, got ",
                 weight.sizes());
  const int64_t rows = weight.size(0);
  const int64_t cols = weight.size(1);
  std::vector<std::pair<std::string, at::Tensor>> out;
  if (format == SparseFormat::Bitmask24) {
    const int64_t most = kernels::max_nonzeros_per_group(weight, 4);
    STUNT_CHECK_AS(ValueError, most >= 0 && most <= 2, layer,
                   ": sparse-24-bitmask needs at most 2 nonzeros in every group of 4 along the "
                   "rows (prune it 2:4 first)",
                   most < 0 ? str("; its ", cols, " columns are not a multiple of 4")
                            : str("; a group holds ", most));
    const at::Tensor kept = two_of_four_positions(weight);
    out.emplace_back("shape", at::tensor({rows, cols}, at::kLong).reshape({2, 1}));
    out.emplace_back("compressed", weight.masked_select(kept).reshape({rows, cols / 2}));
    out.emplace_back("bitmask", pack_bits(kept));
    return out;
  }
  STUNT_CHECK(format == SparseFormat::Bitmask, "compress_sparse_weight: not a sparse format");
  const at::Tensor kept = weight != 0;
  const at::Tensor counts = kept.sum(1);
  out.emplace_back("shape", at::tensor({rows, cols}, at::kLong));
  out.emplace_back("compressed", weight.masked_select(kept));
  out.emplace_back("bitmask", pack_bits(kept));
  out.emplace_back("row_offsets", counts.cumsum(0) - counts);
  return out;
}

at::Tensor decompress_sparse_weight(const at::Tensor& compressed, const at::Tensor& bitmask,
                                    const at::Tensor& shape, const std::string& layer) {
  const at::Tensor dims = shape.to(at::kLong).flatten();
  STUNT_CHECK_AS(FormatError, dims.numel() == 2, layer, ": shape must hold [rows, cols]");
  const int64_t rows = dims[0].item<int64_t>();
  const int64_t cols = dims[1].item<int64_t>();
  STUNT_CHECK_AS(FormatError,
                 bitmask.dim() == 2 && bitmask.size(0) == rows && bitmask.size(1) == (cols + 7) / 8,
                 layer, ": bitmask is ", bitmask.sizes(), ", expected [", rows, ", ",
                 (cols + 7) / 8, "] for a [", rows, ", ", cols, "] weight");
  const at::Tensor kept = unpack_bits(bitmask, cols);
  const int64_t count = kept.sum().item<int64_t>();
  STUNT_CHECK_AS(FormatError, compressed.numel() == count, layer, ": the bitmask marks ", count,
                 " values but compressed holds ", compressed.numel());
  return at::zeros({rows, cols}, compressed.options())
      .masked_scatter_(kept, compressed.flatten().contiguous());
}

int save_sparse_compressed(const model::HfModel& model, SparseFormat format,
                           const std::filesystem::path& folder) {
  STUNT_CHECK(format != SparseFormat::Dense, "save_sparse_compressed needs a sparse format");
  std::map<std::string, const model::Layer*> candidates;
  for (const model::Layer* layer : model.layers()) {
    if (layer->block >= 0 && layer->kind == model::LayerKind::Linear) {
      candidates[layer->name + ".weight"] = layer;
    }
  }
  std::vector<std::pair<std::string, at::Tensor>> tensors;
  nlohmann::json targets = nlohmann::json::array();
  double zeros = 0, total = 0;
  for (auto& [name, tensor] : model.state_dict()) {
    if (at::isFloatingType(tensor.scalar_type())) {
      zeros += static_cast<double>((tensor == 0).sum().item<int64_t>());
      total += static_cast<double>(tensor.numel());
    }
    auto it = candidates.find(name);
    bool compress = it != candidates.end();
    if (compress && format == SparseFormat::Bitmask24) {
      const int64_t most = kernels::max_nonzeros_per_group(tensor, 4);
      compress = most >= 0 && most <= 2;
    }
    if (compress && format == SparseFormat::Bitmask) {
      // Only where the kept values, the bitmask and the row offsets take less room.
      const int64_t kept = (tensor != 0).sum().item<int64_t>();
      const int64_t rows = tensor.size(0), cols = tensor.size(1);
      const int64_t packed = kept * static_cast<int64_t>(tensor.element_size()) +
                             rows * ((cols + 7) / 8) + rows * 8 + 16;
      compress = packed < static_cast<int64_t>(tensor.nbytes());
    }
    if (!compress) {
      tensors.emplace_back(name, tensor);
      continue;
    }
    const std::string module = it->second->name;
    for (auto& [leaf, t] : compress_sparse_weight(tensor, format, module)) {
      tensors.emplace_back(module + "." + leaf, t);
    }
    targets.push_back(module);
  }
  nlohmann::json sparsity = {
      {"format", to_string(format)},
      {"targets", targets},
      {"ignore", nlohmann::json::array()},
      {"global_sparsity", total > 0 ? zeros / total : 0.0},
      {"sparsity_structure", format == SparseFormat::Bitmask24 ? "2:4" : "unstructured"},
      {"registry_requires_subclass", false}};
  // The layout is compressed-tensors 0.14's, the last release that reads it.
  nlohmann::json config = {{"quantization_config",
                            {{"quant_method", "compressed-tensors"},
                             {"version", "0.14.0"},
                             {"sparsity_config", sparsity},
                             {"transform_config", nlohmann::json::object()}}}};
  model.save_as(folder, tensors, config);
  log::info(to_string(format), ": ", targets.size(), " layers stored compressed");
  return static_cast<int>(targets.size());
}

std::unique_ptr<io::Checkpoint> sparse_decompressing_checkpoint(std::unique_ptr<io::Checkpoint> raw,
                                                                const std::string& source) {
  return std::make_unique<SparseDecompressingCheckpoint>(std::move(raw), source);
}

}  // namespace stunt::quant
