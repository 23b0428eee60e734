// The int4 tile kernel's body, included (inside an anonymous namespace) by each
// int4_tiles_*.cpp after it sets its instruction-set target. GCC vector types keep one source
// for every width: a 16-float vector is one zmm register under AVX-512, two ymm under AVX2.
// Only builtins are used here, so that no inline function shared with other translation units
// is compiled for an instruction set the CPU may lack.
//
// Before including, the file defines INT4_MAX_ROWS (rows per register tile), INT4_MAX_BLOCKS
// (16-column blocks per register tile), the vector type Vi (16 int32) and
// `Vf nibble_values(Vi v)`: the low four bits of each lane as a float (AVX-512 looks them up
// in a 16-entry table with one permute; narrower sets mask and convert).

__attribute__((always_inline)) inline Vi load_lanes(const uint8_t* p) {
  Vi v;
  __builtin_memcpy(&v, p, sizeof v);
  return v;
}

__attribute__((always_inline)) inline Vf load_floats(const float* p) {
  Vf v;
  __builtin_memcpy(&v, p, sizeof v);
  return v;
}

/// One register tile: `Rows` rows × `Blocks`·16 columns, over every input.
template <int Rows, int Blocks, bool Zeros>
void tile(const stunt::kernels::detail::Int4TileProblem& p, int64_t row0, int64_t block0) {
  const int64_t octets_per_group = p.group_size / 8;
  const int64_t octets = p.in / 8;
  Vf y[Rows][Blocks];
  for (int r = 0; r < Rows; ++r) {
    for (int b = 0; b < Blocks; ++b) y[r][b] = Vf{};
  }
  for (int64_t g = 0; g < p.groups; ++g) {
    Vf acc[Rows][Blocks];
    for (int r = 0; r < Rows; ++r) {
      for (int b = 0; b < Blocks; ++b) acc[r][b] = Vf{};
    }
    const int64_t octet_end = (g + 1) * octets_per_group;
    for (int64_t o = g * octets_per_group; o < octet_end; ++o) {
      // Lane j of block b holds column j's nibbles for inputs 8o … 8o + 7, input 8o + i in
      // bits 4i. Each input's value is broadcast once for every block of the tile.
      Vi lanes[Blocks];
#pragma GCC unroll 4
      for (int b = 0; b < Blocks; ++b) {
        lanes[b] = load_lanes(p.nibbles + ((block0 + b) * octets + o) * 64);
      }
#pragma GCC unroll 8
      for (int i = 0; i < 8; ++i) {
        Vf w[Blocks];
#pragma GCC unroll 4
        for (int b = 0; b < Blocks; ++b)
          w[b] = nibble_values(i == 0 ? lanes[b] : lanes[b] >> (4 * i));
#pragma GCC unroll 8
        for (int r = 0; r < Rows; ++r) {
          const float x = p.x[(row0 + r) * p.in + 8 * o + i];
#pragma GCC unroll 4
          for (int b = 0; b < Blocks; ++b) acc[r][b] += x * w[b];
        }
      }
    }
#pragma GCC unroll 4
    for (int b = 0; b < Blocks; ++b) {
      const int64_t at = ((block0 + b) * p.groups + g) * 16;
      const Vf scale = load_floats(p.scales + at);
      const Vf zero = Zeros ? load_floats(p.zeros + at) : Vf{} + 8.0f;
#pragma GCC unroll 8
      for (int r = 0; r < Rows; ++r) {
        const float sum = p.x_group_sums[(row0 + r) * p.groups + g];
        y[r][b] += scale * (acc[r][b] - zero * sum);
      }
    }
  }
  for (int r = 0; r < Rows; ++r) {
    for (int b = 0; b < Blocks; ++b) {
      __builtin_memcpy(p.y + (row0 + r) * p.out + (block0 + b) * 16, &y[r][b], sizeof(Vf));
    }
  }
}

/// Rows [row0, row0 + rows) for rows ≤ INT4_MAX_ROWS, at one column tile.
template <int Blocks, bool Zeros>
void rows_tile(const stunt::kernels::detail::Int4TileProblem& p, int64_t row0, int64_t rows,
               int64_t block0) {
  switch (rows) {
    case 1:
      return tile<1, Blocks, Zeros>(p, row0, block0);
#if INT4_MAX_ROWS >= 2
    case 2:
      return tile<2, Blocks, Zeros>(p, row0, block0);
#endif
#if INT4_MAX_ROWS >= 3
    case 3:
      return tile<3, Blocks, Zeros>(p, row0, block0);
#endif
#if INT4_MAX_ROWS >= 4
    case 4:
      return tile<4, Blocks, Zeros>(p, row0, block0);
#endif
#if INT4_MAX_ROWS >= 5
    case 5:
      return tile<5, Blocks, Zeros>(p, row0, block0);
#endif
#if INT4_MAX_ROWS >= 6
    case 6:
      return tile<6, Blocks, Zeros>(p, row0, block0);
#endif
    default:
      __builtin_trap();
  }
}

template <bool Zeros>
void run_tiles(const stunt::kernels::detail::Int4TileProblem& p, int64_t block_begin,
               int64_t block_end) {
  // A single row has few accumulators to hide the multiply-add latency behind: it takes wider
  // column tiles than a batch does.
  const int wide = p.rows == 1 ? INT4_MAX_BLOCKS * 2 : INT4_MAX_BLOCKS;
  int64_t block = block_begin;
  while (block < block_end) {
    const int64_t left = block_end - block;
    const int blocks = left >= wide ? wide : (left >= INT4_MAX_BLOCKS ? INT4_MAX_BLOCKS : 1);
    for (int64_t row = 0; row < p.rows; row += INT4_MAX_ROWS) {
      const int64_t rows = p.rows - row < INT4_MAX_ROWS ? p.rows - row : INT4_MAX_ROWS;
      if (blocks == INT4_MAX_BLOCKS * 2) {
        tile<1, INT4_MAX_BLOCKS * 2, Zeros>(p, row, block);
      } else if (blocks == INT4_MAX_BLOCKS) {
        rows_tile<INT4_MAX_BLOCKS, Zeros>(p, row, rows, block);
      } else {
        rows_tile<1, Zeros>(p, row, rows, block);
      }
    }
    block += blocks;
  }
}

/// Blocks [block_begin, block_end) dequantized into `out`, [in, (block_end − block_begin)·16]
/// row-major: Wᵀ for those columns, ready to be a matrix product's right operand.
void dequantize(const stunt::kernels::detail::Int4TileProblem& p, int64_t block_begin,
                int64_t block_end, float* out) {
  const int64_t octets_per_group = p.group_size / 8;
  const int64_t octets = p.in / 8;
  const int64_t width = (block_end - block_begin) * 16;
  // Inputs outermost, so that each output row is written front to back.
  for (int64_t g = 0; g < p.groups; ++g) {
    for (int64_t o = g * octets_per_group; o < (g + 1) * octets_per_group; ++o) {
      for (int64_t block = block_begin; block < block_end; ++block) {
        const int64_t at = (block * p.groups + g) * 16;
        const Vf scale = load_floats(p.scales + at);
        const Vf zero = p.zeros != nullptr ? load_floats(p.zeros + at) : Vf{} + 8.0f;
        const Vi lanes = load_lanes(p.nibbles + (block * octets + o) * 64);
        for (int i = 0; i < 8; ++i) {
          const Vf w = (nibble_values(lanes >> (4 * i)) - zero) * scale;
          __builtin_memcpy(out + (8 * o + i) * width + (block - block_begin) * 16, &w, sizeof w);
        }
      }
    }
  }
}

void run(const stunt::kernels::detail::Int4TileProblem& p, int64_t block_begin, int64_t block_end) {
  if (p.zeros != nullptr) {
    run_tiles<true>(p, block_begin, block_end);
  } else {
    run_tiles<false>(p, block_begin, block_end);
  }
}
