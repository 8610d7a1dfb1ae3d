// Direct SIMD kernels for the small-channel convolutions of the conv presets, where im2col + GEMM spends more
// time copying than multiplying. Every output is a sum in one fixed order (never split by SIMD width), so
// native and WebAssembly builds give identical results.
#pragma once
#include <cstddef>
#include <cstdint>

namespace aep {

// Geometry of a stride-1 convolution computed over a zero-padded image "flat": rows of the padded image are
// Wp wide, and output position o = oh * Wp + ow reads input o + ki * Wp + kj. The columns ow >= OW of each
// output row are computed too and ignored: no row tails, one long vector loop per plane.
struct FlatConv {
  size_t Hp, Wp, k;  // padded image and kernel size
  size_t OH, OW;     // valid output (Hp - k + 1, Wp - k + 1)
  size_t out_plane;  // floats per output channel: OH * Wp rounded up to a multiple of kFlatRound
  size_t in_plane;   // floats per input channel: room for every read of the rounded output
};
constexpr size_t kFlatRound = 32;  // a multiple of two SIMD vectors of every arch, and of dot16's 16 lanes
FlatConv flat_conv(size_t Hp, size_t Wp, size_t k);

// dst[c][(i + pad) * Wp + j + pad] = img[c][i][j], zero elsewhere; dst holds C planes of g.in_plane floats.
void pad_image(const float* img, size_t C, size_t H, size_t W, size_t pad, const FlatConv& g, float* dst);

// dst[c][i * g.Wp + j] = img[c][i][j] for i < g.OH, j < g.OW; zero elsewhere (planes of g.out_plane floats).
void to_flat_grid(const float* img, size_t C, const FlatConv& g, float* dst);
// img[c][i][j] = src[c][i * g.Wp + j] for i < H, j < W (planes of g.out_plane floats): the valid part of a flat result.
void from_flat_grid(const float* src, size_t C, size_t H, size_t W, const FlatConv& g, float* img);

// out[co][o] = sum over ci, ki, kj (in that order, from 0) of w[((ci * k + ki) * k + kj) * Cout + co] *
// in[ci][o + ki * Wp + kj], for o < g.out_plane. in: [Cin][g.in_plane]; out: [Cout][g.out_plane].
// With bias, out[co][o] = (that sum) + bias[co]; with relu, then (out > 0 ? out : 0), as ActivationLayer's ReLU does.
void conv_s1_flat(const float* in, size_t Cin, const float* w, size_t Cout, const FlatConv& g, float* out,
                  const float* bias = nullptr, bool relu = false);

// out[ph][pw] = the first maximum of the 2 x 2 window at row 2 ph, column 2 pw of a plane whose rows lie `stride` floats
// apart, in the order (0, 0), (0, 1), (1, 0), (1, 1), a NaN replacing any value before it (MaxPool2d's and PyTorch's
// rule); where[ph][pw] = the maximum's place in the window, row * 2 + column. Reads only inside the windows.
void max_pool_2x2(const float* plane, size_t stride, size_t PH, size_t PW, float* out, int32_t* where);

// Rows of two taps woven together and apart (ConvTranspose2d with kernel 2, stride 2): out[2 j] = even[j] + add,
// out[2 j + 1] = odd[j] + add for j < n; and the inverse even[j] = in[2 j], odd[j] = in[2 j + 1].
void interleave2(const float* even, const float* odd, size_t n, float add, float* out);
void deinterleave2(const float* in, size_t n, float* even, float* odd);

// Upsample by 2 (nearest) along a row: out[2 j] = out[2 j + 1] = in[j]; and its adjoint, acc[j] = (acc[j] + in[2 j]) +
// in[2 j + 1], for j < n.
void repeat2(const float* in, size_t n, float* out);
void add_pairs2(const float* in, size_t n, float* acc);

// The gradient of ReLU -> MaxPool2d(2, 2) at the ReLU's input, as max_pool_2x2 left it: each window's place `where`
// gets (pooled > 0 ? 0 + grad : 0) (MaxPool2d's 0 + g, then the ReLU's select), its other three places 0. Writes
// every place of every window (rows `stride` apart), nothing outside them.
void relu_max_unpool_2x2(const float* pooled, const float* grad, const int32_t* where, size_t PH, size_t PW,
                         float* plane, size_t stride);

// sum a[i] * b[i] for i < n (n a multiple of 16) as 16 interleaved partial sums added up in lane order: the same
// rounding whatever the SIMD width.
float dot16(const float* a, const float* b, size_t n);

// Dots kept as their 16 partial sums ("lanes") for sums over a whole batch: for each of A planes of a (a_stride apart)
// and each of count shifts of b, lanes[(p * count + j) * 16 + l] += (the sum over i = l (mod 16), in order from 0, of
// a[p * a_stride + i] * b[offsets[j] + i]), n a multiple of 16. Each load serves several dots (the weight gradients of
// the direct convolutions are many dots of a few planes against shifted inputs); add_lanes then adds each dot's lanes
// up once per batch instead of once per sample. Each lane is one chain of additions in a fixed order: the same
// rounding whatever the SIMD width. From zeroed lanes, add_lanes(dot16_lanes(...)) gives exactly dot16.
void dot16_lanes(const float* a, size_t a_stride, size_t A, const float* b, const size_t* offsets, size_t count,
                 size_t n, float* lanes);
// out[j] += lanes[16 * j] + lanes[16 * j + 1] + ... + lanes[16 * j + 15] (summed in that order from 0), j < count.
void add_lanes(const float* lanes, size_t count, float* out);

// sum x[i] for i < n: 16 interleaved partial sums over the first n - n % 16 elements, added up in lane order,
// then the rest in order. The same rounding whatever the SIMD width.
float sum16(const float* x, size_t n);

}  // namespace aep
