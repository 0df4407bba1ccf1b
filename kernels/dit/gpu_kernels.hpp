#pragma once
// Launchers of the DiT's CUDA kernels (enqueue on `st`; check cudaGetLastError after).
#include <cuda_bf16.h>
#include <cuda_runtime.h>

namespace gfdit::dit::gpu {

using bf16 = __nv_bfloat16;

// y = LN(x) * (1 + mod[scale_off..]) + mod[shift_off..]; one mod row per `rows_per_sample` rows.
void ln_mod(const float* x, long rows, int H, int rows_per_sample, const bf16* mod, int mod_stride, int shift_off,
            int scale_off, bf16* y, cudaStream_t st);
// x += gate * y (one gate row per `rows_per_sample` rows, gate_stride apart), then
// out = LN(x) * (1 + scale) + shift, the same arithmetic in the same order as ln_mod, in one
// pass over x. The gate and the norm's mod may belong to different blocks (a block's last
// residual fused with the next block's first norm).
void residual_ln_mod(float* x, const bf16* y, const bf16* gate, int gate_stride, long rows, int H, int rows_per_sample,
                     const bf16* mod, int mod_stride, int shift_off, int scale_off, bf16* out, cudaStream_t st);
// [B*nloc, 3, NH, D] -> q, k, v [B, NH, ntot, Dp] at tokens l0.. (columns D..Dp untouched: zero
// padding up to a head size the tensor-core attention takes), rotating q and k by per-token
// cos/sin [ntot, D/2] (null: none).
void split_rope(const bf16* qkv, bf16* q, bf16* k, bf16* v, const float* cs, const float* sn, int B, int nloc, int l0,
                int ntot, int NH, int D, int Dp, cudaStream_t st);
// [B, NH, ntot, Dp] tokens l0..l0+nloc -> [B*nloc, NH*D]
void merge_heads(const bf16* o, bf16* y, int B, int nloc, int l0, int ntot, int NH, int D, int Dp, cudaStream_t st);
void gelu(bf16* y, long total, cudaStream_t st);  // tanh approximation, in place
void silu(bf16* y, long total, cudaStream_t st);
void cond(const bf16* t, const float* extra, bf16* out, long total, cudaStream_t st);  // silu(t + extra)
void assemble(float* x, const bf16* txt, const bf16* img, const float* pos, int B, int nt, int ni, int H,
              cudaStream_t st);
void naive_attention(const bf16* q, const bf16* k, const bf16* v, bf16* o, int BH, int n, int D, cudaStream_t st);
// Ulysses (parallel.hpp): a rank's local rows are its text shard then its image shard; segments
// of the all-to-all are padded to R rows (the largest shard) so every peer gets equal bytes.
// qkv [B*nloc, 3, NH, D] -> send[j][3][B][HC][R][Dp]: RoPE by local tables [nloc, D/2] (null:
// none), heads j*HL + c*HC.. (head chunk c of member j's HL; HC == HL, c == 0: all) to member j,
// columns D..Dp zero.
void ulysses_pack_qkv(const bf16* qkv, const float* cs, const float* sn, bf16* send, int B, int nloc, int NH, int D,
                      int Dp, int HL, int R, int HC, int c, cudaStream_t st);
// recv[j][3][B][HL][R][Dp] (member j's rows) -> q, k, v [B, HL, nt+ni, Dp] in global token order.
void ulysses_unpack_qkv(const bf16* recv, bf16* q, bf16* k, bf16* v, int B, int HL, long nt, long ni, int deg, int R,
                        int Dp, cudaStream_t st);
// o [B, HL, nt+ni, Dp] -> send[j][B][R][HL][D]: member j's rows of my heads. D % 8 == 0.
void ulysses_pack_o(const bf16* o, bf16* send, int B, int HL, long nt, long ni, int deg, int R, int D, int Dp,
                    cudaStream_t st);
// recv[j][B][R][HC][D] -> the columns of heads j*HL + c*HC.. of y [B*nloc, NH*D] (all chunks:
// what merge_heads gives at degree 1).
void ulysses_unpack_o(const bf16* recv, bf16* y, int B, int nloc, int NH, int HL, int D, int R, int HC, int c,
                      cudaStream_t st);
// Direct Ulysses: every member's window in the World's symmetric area (the same layout on each):
// q, k, v [B][HL][nt+ni][Dp] for the member's heads and every token, then its attention rows
// [B*nr][NH*D] (nr = its text + image shard). The push kernels write each element once, into its
// owner's window, and end with a system-scope fence; a barrier then makes them visible.
constexpr int max_ulysses_degree = 16;
struct ulysses_window {
  bf16* base[max_ulysses_degree] = {};  // member j's window as this process maps it (mine too)
  int deg = 1, me = 0, B = 1, HL = 1, Dp = 0;
  long nt = 0, ni = 0;
  __host__ __device__ long qkv_elems() const { return static_cast<long>(B) * HL * (nt + ni) * Dp; }  // each of q, k, v
};
// Both pushes move the (sample, head) pairs b * HL + hl in [p0, p1) of the owners' windows.
// blocks > 0 caps the grid (each block walks its share), so a push can share the SMs with a
// kernel still running; 0: one block per token.
// qkv [B*nloc, 3, NH, D] -> q, k, v in the head owners' windows at my tokens (RoPE by local
// tables [nloc, D/2], null: none; columns D..Dp zero).
void ulysses_push_qkv(const bf16* qkv, const float* cs, const float* sn, const ulysses_window& w, int nloc, int NH,
                      int D, int p0, int p1, int blocks, cudaStream_t st);
// o [B, HL, nt+ni, Dp] -> my heads' columns of every token's owner's attention rows.
void ulysses_push_o(const bf16* o, const ulysses_window& w, int NH, int D, int p0, int p1, int blocks, cudaStream_t st);
void generate(bf16* w, long count, unsigned long long stream, float scale, cudaStream_t st);

}  // namespace gfdit::dit::gpu
