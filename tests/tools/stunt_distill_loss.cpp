// Test driver for tests/python/test_distill_reference.py: evaluates Stunt's distillation losses
// and their gradients on tensors written by the test, to compare with the same losses written in
// PyTorch.
//
//   stunt_distill_loss INPUTS.safetensors OUTPUT.safetensors TEMPERATURE
//
// INPUTS: student and teacher logits [..., vocab], optionally keep [...] (positions scored),
// top_ids and top_log_probs [..., k] (a stored top-k teacher), tempered_top_ids and
// tempered_top_log_probs [..., k] (a top-k stored at TEMPERATURE), hidden_student and
// hidden_teacher
// [..., features], optionally attention_student and attention_teacher [batch, heads, positions,
// positions] (probabilities) with values_student and values_teacher [batch, heads, positions,
// head_dim] and attention_keep [batch, positions]. OUTPUT: <loss>_loss (a scalar) and <loss>_grad
// (d loss / d student) for kd, top_k and top_k_tempered (when given), hidden_<comparison> for every
// comparison (when hidden states are given), attention_mse and attention_kl (gradients in the
// student's probabilities) and minilm (minilm_grad in the probabilities, minilm_values_grad in the
// values) when attention is given.
#include <ATen/ATen.h>

#include <iostream>
#include <string>
#include <utility>
#include <vector>

#include "stunt/distill/attention_loss.h"
#include "stunt/distill/hidden_state_loss.h"
#include "stunt/distill/logit_distillation.h"
#include "stunt/io/safetensors.h"

namespace {

// The loss of f(student) and its gradient in the student.
template <typename Loss>
std::pair<at::Tensor, at::Tensor> loss_and_gradient(const at::Tensor& student, Loss&& loss) {
  at::Tensor leaf = student.detach().clone().requires_grad_(true);
  at::Tensor value = loss(leaf);
  value.backward();
  return {value.detach().reshape({1}), leaf.grad()};
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 4) {
    std::cerr << "usage: stunt_distill_loss INPUTS OUTPUT TEMPERATURE\n";
    return 2;
  }
  try {
    namespace distill = stunt::distill;
    auto inputs = stunt::io::SafetensorsFile::open(argv[1]);
    const double temperature = std::stod(argv[3]);
    auto get = [&](const char* name) {
      return inputs->contains(name) ? inputs->tensor(name).clone() : at::Tensor();
    };
    const at::Tensor student = get("student");
    const at::Tensor keep = get("keep");
    std::vector<std::pair<std::string, at::Tensor>> out;
    auto record = [&](const std::string& name, std::pair<at::Tensor, at::Tensor> result) {
      out.emplace_back(name + "_loss", result.first);
      out.emplace_back(name + "_grad", result.second);
    };
    const at::Tensor teacher = get("teacher");
    record("kd", loss_and_gradient(student, [&](const at::Tensor& s) {
             return distill::logit_distillation_loss(s, teacher, temperature, keep);
           }));
    if (inputs->contains("top_ids")) {
      const at::Tensor ids = get("top_ids");
      const at::Tensor log_probs = get("top_log_probs");
      record("top_k", loss_and_gradient(student, [&](const at::Tensor& s) {
               return distill::top_k_distillation_loss(s, ids, log_probs, temperature, keep);
             }));
    }
    if (inputs->contains("tempered_top_ids")) {
      const at::Tensor ids = get("tempered_top_ids");
      const at::Tensor log_probs = get("tempered_top_log_probs");
      record("top_k_tempered", loss_and_gradient(student, [&](const at::Tensor& s) {
               return distill::top_k_distillation_loss(s, ids, log_probs, temperature, keep,
                                                       temperature);
             }));
    }
    if (inputs->contains("hidden_student")) {
      const at::Tensor hidden_student = get("hidden_student");
      const at::Tensor hidden_teacher = get("hidden_teacher");
      for (const char* name : {"mse", "normalized_mse", "cosine", "square_head"}) {
        const distill::HiddenComparison comparison =
            distill::parse_hidden_comparison(name, "stunt_distill_loss");
        record(std::string("hidden_") + name,
               loss_and_gradient(hidden_student, [&](const at::Tensor& s) {
                 return distill::hidden_state_loss(s, hidden_teacher, comparison, keep);
               }));
      }
    }
    if (inputs->contains("attention_student")) {
      const at::Tensor probabilities = get("attention_student");
      const at::Tensor teacher_probabilities = get("attention_teacher");
      const at::Tensor values = get("values_student");
      const at::Tensor teacher_values = get("values_teacher");
      const at::Tensor attention_keep = get("attention_keep");
      record("attention_mse", loss_and_gradient(probabilities, [&](const at::Tensor& s) {
               return distill::attention_map_mse(s, teacher_probabilities, attention_keep);
             }));
      record("attention_kl", loss_and_gradient(probabilities, [&](const at::Tensor& s) {
               return distill::attention_kl(s, teacher_probabilities, attention_keep);
             }));
      at::Tensor p = probabilities.detach().clone().requires_grad_(true);
      at::Tensor v = values.detach().clone().requires_grad_(true);
      at::Tensor loss =
          distill::minilm_loss(p, teacher_probabilities, v, teacher_values, attention_keep);
      loss.backward();
      out.emplace_back("minilm_loss", loss.detach().reshape({1}));
      out.emplace_back("minilm_grad", p.grad());
      out.emplace_back("minilm_values_grad", v.grad());
    }
    stunt::io::save_safetensors(argv[2], out);
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  }
}
