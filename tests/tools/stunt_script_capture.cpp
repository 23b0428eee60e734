// Test driver for tests/python/test_script_model.py: loads a TorchScript archive with Stunt,
// runs one forward on inputs read from a safetensors file while capturing every layer's input,
// and writes the captures and the output.
//
//   stunt_script_capture MODEL.pt INPUTS.safetensors OUTPUT.safetensors [options]
//
// INPUTS holds input0, input1, ... (the forward's positional arguments). OUTPUT gets one tensor
// per layer call, "<layer>" for the first call and "<layer>#<i>" for the i-th repeated call,
// and "output"; its metadata lists "layers" (name:class_name:kind, comma-separated) and
// "state_dict" (names, comma-separated). Options, applied in this order before the forward:
//   --scale LAYER F          multiply LAYER's weight by F in place
//   --assign-scale LAYER F   assign LAYER a new weight tensor, its weight times F
//   --swap-scale LAYER F     replace LAYER's forward by F times its plain output (Linear only)
//   --save FILE              after the forward, save the model as a TorchScript archive
#include <ATen/ATen.h>

#include <iostream>
#include <map>
#include <optional>
#include <string>

#include "stunt/core/error.h"
#include "stunt/io/safetensors.h"
#include "stunt/model/script_model.h"

int main(int argc, char** argv) {
  if (argc < 4) {
    std::cerr << "usage: stunt_script_capture MODEL INPUTS OUTPUT [--scale|--assign-scale|"
                 "--swap-scale LAYER F] [--save FILE]\n";
    return 2;
  }
  try {
    using stunt::model::Layer;
    auto model = stunt::model::load_script_model(argv[1]);
    std::optional<stunt::model::LayerSwap> swap;
    std::string save_to;
    for (int i = 4; i < argc; ++i) {
      const std::string option = argv[i];
      if (option == "--save" && i + 1 < argc) {
        save_to = argv[++i];
        continue;
      }
      if (i + 2 >= argc) throw stunt::ValueError("option " + option + " needs LAYER and F");
      Layer& layer = model->layer(argv[i + 1]);
      const double factor = std::stod(argv[i + 2]);
      i += 2;
      if (option == "--scale") {
        layer.weight.mul_(factor);
      } else if (option == "--assign-scale") {
        layer.weight = layer.weight.detach() * factor;
      } else if (option == "--swap-scale") {
        swap.emplace(layer, [factor](const at::Tensor& x, const Layer& l) {
          return at::linear(x, l.weight, l.bias) * factor;
        });
      } else {
        throw stunt::ValueError("unknown option " + option);
      }
    }

    auto inputs = stunt::io::SafetensorsFile::open(argv[2]);
    stunt::model::Batch batch;
    for (int i = 0; inputs->contains("input" + std::to_string(i)); ++i)
      batch.inputs.push_back(inputs->tensor("input" + std::to_string(i)).clone());

    std::vector<stunt::io::NamedTensor> out;
    std::map<std::string, int> calls;
    stunt::model::Output output;
    {
      stunt::model::InputCapture capture(
          *model, model->layers(), [&](const Layer& layer, const at::Tensor& input) {
            const int index = calls[layer.name]++;
            out.emplace_back(index == 0 ? layer.name : layer.name + "#" + std::to_string(index),
                             input.clone());
          });
      output = model->forward(batch);
    }
    out.emplace_back("output", output.logits);

    std::string layers, names;
    for (const Layer* layer : model->layers()) {
      layers += (layers.empty() ? "" : ",") + layer->name + ":" + layer->class_name + ":" +
                stunt::model::layer_kind_name(layer->kind);
    }
    for (const auto& [name, tensor] : model->state_dict())
      names += (names.empty() ? "" : ",") + name;
    stunt::io::save_safetensors(argv[3], out,
                                {.metadata = {{"layers", layers}, {"state_dict", names}}});
    if (!save_to.empty()) model->save_archive(save_to);
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  }
}
