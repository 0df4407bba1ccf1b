// gpu_model's timing and profiling helpers (CUDA events), for the benchmarks.
#include "kernels/dit/gpu_model_impl.hpp"

namespace gfdit::dit {

result<gpu_timing> gpu_model::impl::time(int batch, std::int64_t tokens, int iters, bool whole_step) {
  if (auto r = ensure_buffers(batch, tokens); !r) return r.err();
  const std::size_t M = static_cast<std::size_t>(B) * n;
  const coll::stream_ref sr{st};
  gpu::generate(hn, static_cast<long>(M * c.hidden), 77, 1.0f, st);
  gpu::generate(silu_c, static_cast<long>(B) * c.hidden, 78, 1.0f, st);
  GFDIT_CUDA(cudaGetLastError());
  if (auto r = modulations(); !r) return r.err();
  // One block alone is timed as it runs inside a step: its first norm is the previous block's
  // (fused into that block's last residual), and it ends with the next block's.
  auto launch = [&]() -> result<void> {
    const int nblk = whole_step ? c.depth : 1;
    const bool rope = c.pos == positional::rope;
    for (int b = 0; b < nblk; ++b) {
      const bool first = whole_step && b == 0;
      if (auto r = ul.w ? block_ulysses(b, rope, first) : block(b, rope, first); !r) return r;
    }
    return whole_step ? final_layer(ul.w ? ul.nr : n / emu_degree) : result<void>{};
  };
  // Ulysses ranks start every timed iteration together (a barrier before the first event).
  auto line_up = [&]() -> result<void> { return ul.w ? ul.w->barrier(ul.g, sr) : result<void>{}; };
  auto reset = [&]() { cudaMemsetAsync(x, 0, M * c.hidden * sizeof(float), st); };
  // Warm-up also chooses the GEMM algorithms outside any capture.
  reset();
  if (auto r = launch(); !r) return r.err();
  GFDIT_CUDA(cudaStreamSynchronize(st));
  cudaEvent_t e0, e1;
  GFDIT_CUDA(cudaEventCreate(&e0));
  GFDIT_CUDA(cudaEventCreate(&e1));
  std::vector<float> eager, graph;
  for (int i = 0; i < iters; ++i) {
    if (auto r = line_up(); !r) return r.err();
    GFDIT_CUDA(cudaEventRecord(e0, st));
    if (auto r = launch(); !r) return r.err();
    GFDIT_CUDA(cudaEventRecord(e1, st));
    GFDIT_CUDA(cudaEventSynchronize(e1));
    float ms = 0;
    GFDIT_CUDA(cudaEventElapsedTime(&ms, e0, e1));
    eager.push_back(ms);
  }
  cudaGraph_t g = nullptr;
  cudaGraphExec_t ge = nullptr;
  GFDIT_CUDA(cudaStreamBeginCapture(st, cudaStreamCaptureModeThreadLocal));
  auto captured = launch();
  const auto end = cudaStreamEndCapture(st, &g);
  if (!captured) return captured.err();
  GFDIT_CUDA(end);
  // Node priorities (copied from the streams at capture): the Ulysses exchanges keep sc's.
  GFDIT_CUDA(cudaGraphInstantiate(&ge, g, cudaGraphInstantiateFlagUseNodePriority));
  GFDIT_CUDA(cudaGraphLaunch(ge, st));
  GFDIT_CUDA(cudaStreamSynchronize(st));
  for (int i = 0; i < iters; ++i) {
    if (auto r = line_up(); !r) return r.err();
    GFDIT_CUDA(cudaEventRecord(e0, st));
    GFDIT_CUDA(cudaGraphLaunch(ge, st));
    GFDIT_CUDA(cudaEventRecord(e1, st));
    GFDIT_CUDA(cudaEventSynchronize(e1));
    float ms = 0;
    GFDIT_CUDA(cudaEventElapsedTime(&ms, e0, e1));
    graph.push_back(ms);
  }
  cudaGraphExecDestroy(ge);
  cudaGraphDestroy(g);
  cudaEventDestroy(e0);
  cudaEventDestroy(e1);
  if (ul.w)
    if (auto r = ul.w->synchronize(sr); !r) return r.err();  // a peer that never came
  std::sort(eager.begin(), eager.end());
  std::sort(graph.begin(), graph.end());
  return gpu_timing{eager[eager.size() / 2], graph[graph.size() / 2]};
}

result<std::vector<std::pair<std::string, double>>> gpu_model::profile_block(int batch, std::int64_t tokens, int iters,
                                                                             const sp_group& g) {
  impl& p = *impl_;
  static const std::vector<const char*> one_gpu = {
      "ln_mod1",   "qkv_gemm",          "split_rope",    "attention", "merge_heads",
      "proj_gemm", "residual1_ln_mod2", "fc1_gelu_gemm", "fc2_gemm",  "residual2_ln_next"};
  static const std::vector<const char*> direct = {
      "ln_mod1", "qkv_gemm",  "push_qkv",          "barrier",       "attention", "push_o",
      "barrier", "proj_gemm", "residual1_ln_mod2", "fc1_gelu_gemm", "fc2_gemm",  "residual2_ln_next"};
  if (g.world) {
    tokens = p.c.seq_tokens();
    if (auto r = p.ensure_buffers(batch, tokens); !r) return r.err();
    if (auto r = p.ulysses_begin(g, batch); !r) return r.err();
    if (!p.ul.direct) {
      p.ulysses_end();
      return make_error(errc::invalid_argument,
                        "dit gpu profile_block: Ulysses stages are marked for the direct exchange only");
    }
  }
  struct end_ulysses {  // every return below
    impl& p;
    ~end_ulysses() { p.ulysses_end(); }
  } guard{p};
  const auto& names = g.world ? direct : one_gpu;
  const std::size_t stages = names.size();
  if (auto r = p.time(batch, tokens, 2, false); !r) return r.err();  // buffers, algorithms, warm-up
  std::vector<cudaEvent_t> ev(stages + 1);
  for (auto& e : ev) GFDIT_CUDA(cudaEventCreate(&e));
  std::vector<std::vector<float>> t(stages);
  p.marks = &ev;
  for (int i = 0; i < iters; ++i) {
    if (g.world)  // the members start together, as in time_ulysses
      if (auto r = g.world->barrier(g.group, coll::stream_ref{p.st}); !r) {
        p.marks = nullptr;
        return r.err();
      }
    auto r =
        g.world ? p.block_ulysses(0, p.c.pos == positional::rope, true) : p.block(0, p.c.pos == positional::rope, true);
    if (!r) {
      p.marks = nullptr;
      return r.err();
    }
    GFDIT_CUDA(cudaEventSynchronize(ev.back()));
    for (std::size_t s = 0; s < stages; ++s) {
      float ms = 0;
      GFDIT_CUDA(cudaEventElapsedTime(&ms, ev[s], ev[s + 1]));
      t[s].push_back(ms);
    }
  }
  p.marks = nullptr;
  for (auto& e : ev) cudaEventDestroy(e);
  std::vector<std::pair<std::string, double>> out;
  for (std::size_t s = 0; s < stages; ++s) {
    std::sort(t[s].begin(), t[s].end());
    out.emplace_back(names[s], t[s][t[s].size() / 2]);
  }
  return out;
}

result<gpu_timing> gpu_model::time_block(int batch, std::int64_t tokens, int iters) {
  return impl_->time(batch, tokens, iters, false);
}

result<gpu_timing> gpu_model::time_step(int batch, std::int64_t tokens, int iters) {
  return impl_->time(batch, tokens, iters, true);
}

result<gpu_timing> gpu_model::time_rank_compute(int batch, std::int64_t tokens, int degree, bool whole_step,
                                                int iters) {
  if (degree < 1 || impl_->c.heads % degree != 0 || tokens % degree != 0)
    return make_error(errc::invalid_argument, "dit gpu: degree must divide the heads and the tokens");
  impl_->emu_degree = degree;
  auto r = impl_->time(batch, tokens, iters, whole_step);
  impl_->emu_degree = 1;
  return r;
}

result<gpu_timing> gpu_model::time_ulysses(int batch, const sp_group& g, bool whole_step, int iters) {
  impl& p = *impl_;
  if (!g.world)
    return make_error(errc::invalid_argument, "dit gpu time_ulysses: needs a World (use time_step for degree 1)");
  const std::int64_t N = p.c.seq_tokens();
  if (auto r = p.ensure_buffers(batch, N); !r) return r.err();
  if (auto r = p.ulysses_begin(g, batch); !r) return r.err();
  auto r = p.time(batch, N, iters, whole_step);
  p.ulysses_end();
  return r;
}

}  // namespace gfdit::dit
