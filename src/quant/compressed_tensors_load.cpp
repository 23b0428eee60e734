// Reading compressed-tensors folders: a checkpoint view that hands the model loader dense
// weights decompressed as compressed-tensors decompresses them, then activation quantization
// installed on the loaded layers.
#include <ATen/ATen.h>

#include <fstream>
#include <map>
#include <sstream>

#include "detail/compressed_tensors_config.h"
#include "stunt/core/error.h"
#include "stunt/core/logging.h"
#include "stunt/io/safetensors_format.h"
#include "stunt/io/tensor_dtype.h"
#include "stunt/kernels/quantize.h"
#include "stunt/model/load.h"
#include "stunt/quant/compressed_tensors.h"
#include "stunt/quant/sparse_compressed.h"

namespace stunt::quant {
namespace {

namespace fs = std::filesystem;
using Json = nlohmann::json;
using detail::ends_with;

struct CompressedModule {
  std::string group;
  const QuantScheme* scheme = nullptr;
  std::string format;
};

class DecompressingCheckpoint final : public io::Checkpoint {
 public:
  DecompressingCheckpoint(std::unique_ptr<io::Checkpoint> raw,
                          const detail::CompressedConfig& config, const std::string& source)
      : io::Checkpoint(raw->path()), raw_(std::move(raw)) {
    std::map<std::string, const io::TensorEntry*> by_name;
    for (const io::TensorEntry& e : raw_->entries()) by_name[e.name] = &e;
    for (const io::TensorEntry& e : raw_->entries()) {
      if (!ends_with(e.name, ".weight_scale")) continue;
      const std::string module = e.name.substr(0, e.name.size() - 13);
      CompressedModule m;
      if (const auto* group = detail::find_group(config, module)) {
        m.group = group->first;
        m.scheme = &group->second;
      }
      STUNT_CHECK_AS(FormatError, m.scheme != nullptr && m.scheme->weights, source, ": ", module,
                     " has quantized weights but no config group of quantization_config targets "
                     "it");
      m.format = scheme_format(*m.scheme);
      STUNT_CHECK_AS(NotImplementedError, by_name.count(module + ".weight_g_idx") == 0, source,
                     ": ", module,
                     " carries weight_g_idx (act-order 'group'), which "
                     "compressed-tensors removed; Stunt does not read it");
      modules_[module] = m;
    }
    for (const io::TensorEntry& e : raw_->entries()) {
      const std::string& n = e.name;
      const auto dot = n.rfind('.');
      const std::string module = dot == std::string::npos ? "" : n.substr(0, dot);
      const std::string leaf = dot == std::string::npos ? n : n.substr(dot + 1);
      auto it = modules_.find(module);
      if (it == modules_.end()) {
        entries_.push_back(e);
        continue;
      }
      if (leaf == "weight_packed" || (leaf == "weight" && it->second.format != "pack-quantized")) {
        io::TensorEntry dense = e;
        dense.name = module + ".weight";
        const io::TensorEntry& scale = *by_name.at(module + ".weight_scale");
        dense.dtype = scale.dtype;
        if (leaf == "weight_packed") {
          STUNT_CHECK_AS(FormatError, by_name.count(module + ".weight_shape") > 0, source, ": ",
                         module, ".weight_packed has no weight_shape beside it");
          const at::Tensor shape = raw_->load(module + ".weight_shape").to(at::kLong);
          STUNT_CHECK_AS(FormatError, shape.numel() == 2, source, ": ", module,
                         ".weight_shape must hold [out, in], found ", shape.numel(), " values");
          dense.shape = {shape[0].item<int64_t>(), shape[1].item<int64_t>()};
        }
        dense.numel = static_cast<uint64_t>(dense.shape.at(0) * dense.shape.at(1));
        entries_.push_back(dense);
      } else if (leaf != "weight_scale" && leaf != "weight_zero_point" && leaf != "weight_shape" &&
                 leaf != "input_scale" && leaf != "input_zero_point") {
        entries_.push_back(e);  // bias and anything else passes through
      }
    }
  }

  io::CheckpointFormat format() const override { return raw_->format(); }
  const std::vector<io::TensorEntry>& entries() const override { return entries_; }

  at::Tensor load(const std::string& name) const override {
    if (ends_with(name, ".weight")) {
      const std::string module = name.substr(0, name.size() - 7);
      auto it = modules_.find(module);
      if (it != modules_.end()) return decompress(module, it->second);
    }
    return raw_->load(name);
  }

  const std::map<std::string, CompressedModule>& modules() const { return modules_; }
  const io::Checkpoint& raw() const { return *raw_; }

  /// The weight's scales and zero points as the checkpoint stores them (zero points unpacked;
  /// zeros for symmetric weights, as compute_qparams gives them), in the scale's dtype.
  QParams weight_qparams(const std::string& module) const {
    const CompressedModule& m = modules_.at(module);
    const QuantArgs& args = *m.scheme->weights;
    QParams qp;
    qp.scale = raw_->load(module + ".weight_scale");
    if (args.symmetric) {
      qp.zero_point = at::zeros_like(qp.scale);
    } else if (m.format == "pack-quantized") {
      at::Tensor zp = raw_->load(module + ".weight_zero_point");
      const QuantStrategy s = args.resolved_strategy();
      if (s == QuantStrategy::Group || s == QuantStrategy::Channel) {
        const int64_t out = raw_->load(module + ".weight_shape").to(at::kLong)[0].item<int64_t>();
        zp = kernels::unpack_int32(zp.t().contiguous(), args.num_bits, out).t();
      }
      qp.zero_point = zp;
    } else {
      qp.zero_point = raw_->load(module + ".weight_zero_point");
    }
    qp.zero_point = qp.zero_point.to(qp.scale.scalar_type());
    return qp;
  }

 private:
  at::Tensor decompress(const std::string& module, const CompressedModule& m) const {
    const QuantArgs& args = *m.scheme->weights;
    const QParams qp = weight_qparams(module);
    at::Tensor q;
    if (m.format == "pack-quantized") {
      const at::Tensor shape = raw_->load(module + ".weight_shape").to(at::kLong);
      const int64_t out = shape[0].item<int64_t>();
      const int64_t in = shape[1].item<int64_t>();
      q = kernels::unpack_int32(raw_->load(module + ".weight_packed"), args.num_bits, in);
      STUNT_CHECK_AS(FormatError, q.size(0) == out, module, ".weight_packed has ", q.size(0),
                     " rows but weight_shape says ", out);
    } else {
      q = raw_->load(module + ".weight");
    }
    // compressed-tensors dequantizes in the scale's dtype.
    return dequantize_weight(q.to(qp.scale.scalar_type()), qp, args);
  }

  std::unique_ptr<io::Checkpoint> raw_;
  std::map<std::string, CompressedModule> modules_;
  std::vector<io::TensorEntry> entries_;
};

}  // namespace

bool is_compressed_tensors_folder(const fs::path& path) {
  if (!fs::is_directory(path)) return false;
  const Json config = detail::read_config(path);
  if (!config.is_object() || !config.contains("quantization_config")) return false;
  const Json& q = config["quantization_config"];
  return q.is_object() && q.value("quant_method", std::string()) == "compressed-tensors";
}

std::unique_ptr<model::HfModel> load_model(const fs::path& path, const model::LoadOptions& options,
                                           QuantizationPlan* plan) {
  if (!is_compressed_tensors_folder(path)) return model::load_dense_model(path, options);
  const std::string source = (path / "config.json").string();
  const Json q = detail::read_config(path)["quantization_config"];
  const std::string status = q.value("quantization_status", std::string("compressed"));
  STUNT_CHECK_AS(NotImplementedError, status == "compressed", source, ": quantization_status \"",
                 status,
                 "\" is not read; Stunt reads checkpoints saved "
                 "compressed (save_compressed=True)");
  if (q.contains("sparsity_config") && q["sparsity_config"].is_object() &&
      !q["sparsity_config"].empty()) {
    const std::string format = q["sparsity_config"].value("format", std::string("dense"));
    const bool quantized = q.contains("config_groups") && q["config_groups"].is_object() &&
                           !q["config_groups"].empty();
    if (format == "sparse-bitmask" || format == "sparse-24-bitmask") {
      STUNT_CHECK_AS(NotImplementedError, !quantized, source, ": sparsity_config format ", format,
                     " on quantized weights is not read; Stunt reads sparse layouts of "
                     "unquantized weights");
      log::info("compressed-tensors checkpoint: ", format, " (decompressed to dense)");
      return model::load_hf_model(
          path, sparse_decompressing_checkpoint(io::Checkpoint::open(path), source), options);
    }
    STUNT_CHECK_AS(NotImplementedError, format == "dense", source, ": sparsity_config format \"",
                   format,
                   "\" is not read; Stunt reads dense, sparse-bitmask and "
                   "sparse-24-bitmask");
  }
  QuantizationPlan local;
  QuantizationPlan& out = plan != nullptr ? *plan : local;
  // Held until the loader is done: the checkpoint view points into its schemes.
  const detail::CompressedConfig config = detail::parse_compressed_config(q, source);
  for (const auto& group : config.groups) out.add_group(group.second);
  out.add_ignore(config.ignore);
  auto checkpoint =
      std::make_unique<DecompressingCheckpoint>(io::Checkpoint::open(path), config, source);
  const DecompressingCheckpoint& view = *checkpoint;
  std::map<std::string, CompressedModule> modules = view.modules();
  // Read before the checkpoint moves into the loader, as the input scales below.
  std::map<std::string, QParams> weight_qparams;
  for (const auto& entry : modules) weight_qparams[entry.first] = view.weight_qparams(entry.first);
  // Input scales must be read before the checkpoint moves into the loader.
  std::map<std::string, QParams> input_qparams;
  for (const auto& e : view.raw().entries()) {
    if (!ends_with(e.name, ".input_scale")) continue;
    const std::string module = e.name.substr(0, e.name.size() - 12);
    QParams qp;
    qp.scale = view.raw().load(e.name).to(at::kFloat);
    qp.zero_point = at::zeros_like(qp.scale);
    for (const auto& x : view.raw().entries()) {
      if (x.name == module + ".input_zero_point")
        qp.zero_point = view.raw().load(x.name).to(at::kFloat);
    }
    input_qparams[module] = qp;
  }
  std::unique_ptr<model::HfModel> loaded =
      model::load_hf_model(path, std::move(checkpoint), options);
  for (model::Layer* layer : loaded->layers()) {
    auto it = modules.find(layer->name);
    if (it == modules.end()) continue;
    const QuantScheme& scheme = *it->second.scheme;
    LayerQuantization& record = out.layer(layer->name);
    record.group = it->second.group;
    record.weight = weight_qparams.at(layer->name);
    if (scheme.input_activations) {
      const QuantArgs& in = *scheme.input_activations;
      if (in.dynamic == DynamicKind::Static) {
        auto found = input_qparams.find(layer->name);
        STUNT_CHECK_AS(FormatError, found != input_qparams.end(), source, ": ", layer->name,
                       " quantizes its inputs statically but has no input_scale");
        record.input = found->second;
      }
      quantize_layer_inputs(*layer, in, record.input);
    }
  }
  log::info("compressed-tensors checkpoint: ", modules.size(), " quantized layers (",
            q.value("format", std::string("?")), ")");
  return loaded;
}

}  // namespace stunt::quant
