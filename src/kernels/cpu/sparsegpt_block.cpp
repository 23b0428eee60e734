#include "stunt/kernels/sparsegpt_block.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <array>
#include <limits>
#include <vector>

#include "row_update.h"
#include "stunt/core/error.h"

namespace stunt::kernels {
namespace {

template <typename T>
void prune_block(at::Tensor& weights, const at::Tensor& hinv, at::Tensor& pruned, int64_t n,
                 int64_t m, at::Tensor& errors, at::Tensor& losses) {
  const int64_t rows = weights.size(0);
  const int64_t count = weights.size(1);
  T* w = weights.data_ptr<T>();
  const T* h = hinv.data_ptr<T>();
  bool* p = pruned.data_ptr<bool>();
  T* e = errors.data_ptr<T>();
  T* loss = losses.data_ptr<T>();
  at::parallel_for(0, rows, 8, [&](int64_t begin, int64_t end) {
    std::vector<int64_t> order(static_cast<size_t>(std::max<int64_t>(m, 1)));
    std::vector<T> score(order.size());
    for (int64_t r = begin; r < end; ++r) {
      T* wr = w + r * count;
      bool* pr = p + r * count;
      T* er = e + r * count;
      T row_loss = loss[r];
      for (int64_t i = 0; i < count; ++i) {
        if (m > 0 && i % m == 0) {
          // Already pruned weights score below every other, so they fill the n slots first.
          for (int64_t j = 0; j < m; ++j) {
            const T d = h[(i + j) * count + i + j];
            score[j] =
                pr[i + j] ? -std::numeric_limits<T>::infinity() : wr[i + j] * wr[i + j] / (d * d);
          }
          // Insertion sort: stable, and without the allocation std::stable_sort makes for
          // every group of m.
          for (int64_t j = 0; j < m; ++j) {
            int64_t k = j;
            for (; k > 0 && score[j] < score[order[k - 1]]; --k) order[k] = order[k - 1];
            order[k] = j;
          }
          for (int64_t j = 0; j < n; ++j) pr[i + order[j]] = true;
        }
        const T x = wr[i];
        const T q = pr[i] ? T(0) : x;
        const T d = h[i * count + i];
        const T err = (x - q) / d;
        row_loss += err * err / T(2);
        er[i] = err;
        wr[i] = q;
        detail::subtract_scaled(wr + i + 1, h + i * count + i + 1, err, count - i - 1);
      }
      loss[r] = row_loss;
    }
  });
}

}  // namespace

void sparsegpt_prune_block(at::Tensor& weights, const at::Tensor& hinv, at::Tensor& pruned,
                           int64_t n, int64_t m, at::Tensor& errors, at::Tensor& losses) {
  STUNT_CHECK(weights.dim() == 2, "sparsegpt_prune_block: weights must be [rows, count]");
  const int64_t rows = weights.size(0);
  const int64_t count = weights.size(1);
  auto expect = [&](const at::Tensor& t, at::IntArrayRef shape, c10::ScalarType dtype,
                    const char* name) {
    STUNT_CHECK(t.is_contiguous() && t.scalar_type() == dtype && t.sizes() == shape,
                "sparsegpt_prune_block: ", name, " must be contiguous ", dtype, " ", shape,
                ", got ", t.scalar_type(), " ", t.sizes());
  };
  expect(weights, {rows, count}, weights.scalar_type(), "weights");
  expect(hinv, {count, count}, weights.scalar_type(), "hinv");
  expect(pruned, {rows, count}, at::kBool, "pruned");
  expect(errors, {rows, count}, weights.scalar_type(), "errors");
  expect(losses, {rows}, weights.scalar_type(), "losses");
  STUNT_CHECK(m == 0 || (n >= 0 && n <= m && count % m == 0), "sparsegpt_prune_block: ", n, ":", m,
              " groups do not tile a block of ", count, " columns");
  if (weights.scalar_type() == at::kDouble) {
    prune_block<double>(weights, hinv, pruned, n, m, errors, losses);
  } else {
    STUNT_CHECK(weights.scalar_type() == at::kFloat,
                "sparsegpt_prune_block: float32 or float64 weights, got ", weights.scalar_type());
    prune_block<float>(weights, hinv, pruned, n, m, errors, losses);
  }
}

}  // namespace stunt::kernels
