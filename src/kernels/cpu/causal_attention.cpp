#include "stunt/kernels/causal_attention.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <ATen/core/grad_mode.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <limits>
#include <vector>

#include "avx2_exp.h"
#include "cpu_features.h"
#include "stunt/core/error.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#endif

// The BLAS inside LibTorch (MKL in the x86-64 wheels), through its Fortran interface with 32-bit
// integers, as ATen's own CPU BLAS calls it. Weak: a LibTorch without it leaves this null, and
// attention stays with ATen.
extern "C" void sgemm_(const char* transa, const char* transb, const int* m, const int* n,
                       const int* k, const float* alpha, const float* a, const int* lda,
                       const float* b, const int* ldb, const float* beta, float* c, const int* ldc)
    __attribute__((weak));

namespace stunt::kernels {
namespace {

/// Keys scored at once: a block of scores for 192 query rows is 192 KiB, inside a core's L2.
constexpr int64_t kKeyBlock = 256;

/// Query positions per tile and head. The rows of all the query heads that share a key/value
/// head go into one tile (a multiple of kKeyBlock's divisors, so no row of a later key block is
/// wholly in the future).
int64_t query_block_for(int64_t group) {
  if (group <= 4) return 64;
  if (group <= 8) return 32;
  return 16;
}

int to_int(int64_t value) { return static_cast<int>(value); }

/// Row-major c[m × n] = alpha · a[m × k] · b[n × k]ᵀ.
void scores_product(int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda,
                    const float* b, int64_t ldb, float* c, int64_t ldc) {
  const int mi = to_int(m), ni = to_int(n), ki = to_int(k);
  const int lda_i = to_int(lda), ldb_i = to_int(ldb), ldc_i = to_int(ldc);
  const float zero = 0.0f;
  // Column-major BLAS sees the transposes: cᵀ = b · aᵀ.
  sgemm_("T", "N", &ni, &mi, &ki, &alpha, b, &ldb_i, a, &lda_i, &zero, c, &ldc_i);
}

/// Row-major c[m × n] = a[m × k] · b[k × n] + beta · c.
void values_product(int64_t m, int64_t n, int64_t k, const float* a, int64_t lda, const float* b,
                    int64_t ldb, float beta, float* c, int64_t ldc) {
  const int mi = to_int(m), ni = to_int(n), ki = to_int(k);
  const int lda_i = to_int(lda), ldb_i = to_int(ldb), ldc_i = to_int(ldc);
  const float one = 1.0f;
  sgemm_("N", "N", &ni, &mi, &ki, &one, b, &ldb_i, a, &lda_i, &beta, c, &ldc_i);
}

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
constexpr float kMinusInf = -std::numeric_limits<float>::infinity();

/// The largest of x[0, n); NaN when any is NaN.
float row_max_scalar(const float* x, int64_t n) {
  float best = kMinusInf;
  for (int64_t i = 0; i < n; ++i) {
    if (std::isnan(x[i])) return kNaN;
    best = std::max(best, x[i]);
  }
  return best;
}

/// x[i] = e^(x[i] - shift) for i in [0, n); returns their sum.
float exp_shifted_scalar(float* x, int64_t n, float shift) {
  float sum = 0.0f;
  for (int64_t i = 0; i < n; ++i) {
    x[i] = std::exp(x[i] - shift);
    sum += x[i];
  }
  return sum;
}

#if defined(__x86_64__) && defined(__GNUC__)

__attribute__((target("avx2"))) float horizontal_sum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
  return _mm_cvtss_f32(s);
}

__attribute__((target("avx2"))) float row_max_avx2(const float* x, int64_t n) {
  __m256 best = _mm256_set1_ps(kMinusInf);
  // MAXPS drops a NaN in its first operand, so NaNs are tracked apart.
  __m256 nan = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 v = _mm256_loadu_ps(x + i);
    best = _mm256_max_ps(best, v);
    nan = _mm256_or_ps(nan, _mm256_cmp_ps(v, v, _CMP_UNORD_Q));
  }
  if (_mm256_movemask_ps(nan) != 0) return kNaN;
  const float tail = row_max_scalar(x + i, n - i);
  return std::isnan(tail) ? kNaN : std::max(detail::horizontal_max(best), tail);
}

__attribute__((target("avx2,fma"))) float exp_shifted_avx2(float* x, int64_t n, float shift) {
  const __m256 s = _mm256_set1_ps(shift);
  __m256 sum = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 e = detail::exp_nonpositive(_mm256_sub_ps(_mm256_loadu_ps(x + i), s));
    _mm256_storeu_ps(x + i, e);
    sum = _mm256_add_ps(sum, e);
  }
  if (i < n) {
    // The tail as one masked vector, so that every element goes through the same formula.
    alignas(32) int32_t lanes[8];
    for (int l = 0; l < 8; ++l) lanes[l] = i + l < n ? -1 : 0;
    const __m256i mask = _mm256_load_si256(reinterpret_cast<const __m256i*>(lanes));
    const __m256 e =
        _mm256_and_ps(detail::exp_nonpositive(_mm256_sub_ps(_mm256_maskload_ps(x + i, mask), s)),
                      _mm256_castsi256_ps(mask));
    _mm256_maskstore_ps(x + i, mask, e);
    sum = _mm256_add_ps(sum, e);
  }
  return horizontal_sum(sum);
}

#endif

float row_max(const float* x, int64_t n) {
#if defined(__x86_64__) && defined(__GNUC__)
  if (detail::cpu_has_avx2_fma()) return row_max_avx2(x, n);
#endif
  return row_max_scalar(x, n);
}

float exp_shifted(float* x, int64_t n, float shift) {
#if defined(__x86_64__) && defined(__GNUC__)
  if (detail::cpu_has_avx2_fma()) return exp_shifted_avx2(x, n, shift);
#endif
  return exp_shifted_scalar(x, n, shift);
}

/// One tile: `rows_per_head` consecutive query positions from q0, for every query head that
/// reads key/value head g of sequence b.
struct TileGeometry {
  int64_t dim, group, length;
  float scale;
  const float *q, *k, *v;
  int64_t q_strides[3], k_strides[3], v_strides[3];  // batch, head, position
  float* out;                                        // [batch, length, heads, dim]
  int64_t heads;
};

/// A thread's scratch for its tiles. Kept for the thread's life: allocating a few hundred KiB
/// per call, beside a model's large activations, left glibc holding hundreds of MiB of heap.
struct TileBuffers {
  std::vector<float> queries, scores, values, running_max, running_sum;

  static TileBuffers& for_this_thread(int64_t rows, int64_t dim) {
    thread_local TileBuffers buffers;
    buffers.reserve(rows, dim);
    return buffers;
  }

 private:
  void reserve(int64_t rows, int64_t dim) {
    auto grow = [](std::vector<float>& v, int64_t n) {
      if (static_cast<int64_t>(v.size()) < n) v.resize(static_cast<size_t>(n));
    };
    grow(queries, rows * dim);
    grow(scores, rows * kKeyBlock);
    grow(values, rows * dim);
    grow(running_max, rows);
    grow(running_sum, rows);
  }
};

void attend_tile(const TileGeometry& t, int64_t b, int64_t g, int64_t q0, int64_t rows_per_head,
                 TileBuffers& buf) {
  const int64_t dim = t.dim;
  const int64_t rows = t.group * rows_per_head;
  float* queries = buf.queries.data();
  float* scores = buf.scores.data();
  float* values = buf.values.data();
  for (int64_t hg = 0; hg < t.group; ++hg) {
    const float* src =
        t.q + b * t.q_strides[0] + (g * t.group + hg) * t.q_strides[1] + q0 * t.q_strides[2];
    for (int64_t i = 0; i < rows_per_head; ++i) {
      std::copy(src + i * t.q_strides[2], src + i * t.q_strides[2] + dim,
                queries + (hg * rows_per_head + i) * dim);
    }
  }
  std::fill(buf.running_max.begin(), buf.running_max.begin() + rows, kMinusInf);
  std::fill(buf.running_sum.begin(), buf.running_sum.begin() + rows, 0.0f);
  const float* keys = t.k + b * t.k_strides[0] + g * t.k_strides[1];
  const float* vals = t.v + b * t.v_strides[0] + g * t.v_strides[1];
  // The last query of the tile sees keys [0, key_end); earlier ones fewer.
  const int64_t key_end = q0 + rows_per_head;
  for (int64_t n0 = 0; n0 < key_end; n0 += kKeyBlock) {
    const int64_t nb = std::min(kKeyBlock, key_end - n0);
    scores_product(rows, nb, dim, t.scale, queries, dim, keys + n0 * t.k_strides[2], t.k_strides[2],
                   scores, kKeyBlock);
    for (int64_t r = 0; r < rows; ++r) {
      float* s = scores + r * kKeyBlock;
      const int64_t position = q0 + r % rows_per_head;
      const int64_t visible = std::clamp<int64_t>(position - n0 + 1, 0, nb);
      std::fill(s + visible, s + nb, 0.0f);
      if (visible == 0) continue;
      float& seen_max = buf.running_max[r];
      float& seen_sum = buf.running_sum[r];
      const float block_max = row_max(s, visible);
      if (std::isnan(block_max) || std::isnan(seen_max)) {
        std::fill(s, s + visible, kNaN);
        seen_max = kNaN;
        seen_sum = kNaN;
        continue;
      }
      const float new_max = std::max(seen_max, block_max);
      // Rescale what earlier key blocks accumulated to the new maximum (online softmax).
      const float correction = std::exp(seen_max - new_max);
      seen_sum = seen_sum * correction + exp_shifted(s, visible, new_max);
      seen_max = new_max;
      if (n0 > 0 && correction != 1.0f) {
        float* o = values + r * dim;
        for (int64_t d = 0; d < dim; ++d) o[d] *= correction;
      }
    }
    values_product(rows, dim, nb, scores, kKeyBlock, vals + n0 * t.v_strides[2], t.v_strides[2],
                   n0 == 0 ? 0.0f : 1.0f, values, dim);
  }
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t head = g * t.group + r / rows_per_head;
    const int64_t position = q0 + r % rows_per_head;
    float* dst = t.out + ((b * t.length + position) * t.heads + head) * dim;
    const float inverse = 1.0f / buf.running_sum[r];
    const float* o = values + r * dim;
    for (int64_t d = 0; d < dim; ++d) dst[d] = o[d] * inverse;
  }
}

bool fits_int(int64_t value) { return value >= 0 && value < (int64_t{1} << 31); }

}  // namespace

bool causal_attention_supported(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v) {
  if (sgemm_ == nullptr) return false;
  for (const at::Tensor* t : {&q, &k, &v}) {
    if (!t->defined() || t->dim() != 4 || t->scalar_type() != at::kFloat || !t->is_cpu() ||
        t->stride(3) != 1 || !fits_int(t->stride(2))) {
      return false;
    }
  }
  if (at::GradMode::is_enabled() && (q.requires_grad() || k.requires_grad() || v.requires_grad())) {
    return false;
  }
  return q.size(0) == k.size(0) && k.sizes() == v.sizes() && q.size(2) == k.size(2) &&
         q.size(3) == k.size(3) && q.size(2) > 0 && q.size(3) > 0 && k.size(1) > 0 &&
         q.size(1) % k.size(1) == 0 && fits_int(q.size(2)) && fits_int(q.size(3));
}

at::Tensor causal_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                            double scale) {
  STUNT_CHECK(causal_attention_supported(q, k, v), "causal_attention: unsupported inputs q ",
              q.sizes(), ", k ", k.sizes(), ", v ", v.sizes(),
              "; check causal_attention_supported() first");
  const int64_t batch = q.size(0), heads = q.size(1), length = q.size(2), dim = q.size(3);
  const int64_t kv_heads = k.size(1);
  const int64_t group = heads / kv_heads;
  const int64_t query_block = query_block_for(group);
  const int64_t query_blocks = (length + query_block - 1) / query_block;
  at::Tensor out = at::empty({batch, length, heads, dim}, q.options());
  TileGeometry geometry{dim,
                        group,
                        length,
                        static_cast<float>(scale),
                        q.const_data_ptr<float>(),
                        k.const_data_ptr<float>(),
                        v.const_data_ptr<float>(),
                        {q.stride(0), q.stride(1), q.stride(2)},
                        {k.stride(0), k.stride(1), k.stride(2)},
                        {v.stride(0), v.stride(1), v.stride(2)},
                        out.data_ptr<float>(),
                        heads};
  const int64_t pairs = batch * kv_heads;
  const int64_t tiles = pairs * query_blocks;
  // Tiles are handed out one at a time, heaviest first (the last query blocks see the most
  // keys), so that the threads finish together. Inside the parallel region the BLAS runs on
  // one thread.
  std::atomic<int64_t> next{0};
  const int64_t workers = std::min<int64_t>(at::get_num_threads(), tiles);
  at::parallel_for(0, workers, 1, [&](int64_t, int64_t) {
    TileBuffers& buffers = TileBuffers::for_this_thread(group * query_block, dim);
    for (int64_t t = next.fetch_add(1); t < tiles; t = next.fetch_add(1)) {
      const int64_t qb = query_blocks - 1 - t / pairs;
      const int64_t b = (t % pairs) / kv_heads;
      const int64_t g = (t % pairs) % kv_heads;
      const int64_t q0 = qb * query_block;
      attend_tile(geometry, b, g, q0, std::min(query_block, length - q0), buffers);
    }
  });
  return out.transpose(1, 2);
}

}  // namespace stunt::kernels
