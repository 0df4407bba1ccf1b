#include "kernels/train/dit_grad.hpp"

#include <algorithm>
#include <string>

#include "kernels/dit/embeddings.hpp"
#include "kernels/train/ops.hpp"

namespace gfdit::train {

result<param_layout> param_layout::of(const dit::model_config& c) {
  if (auto v = dit::validate(c); !v) return v.err();
  if (c.cond != dit::conditioning::class_label || c.pos != dit::positional::sincos || c.video())
    return make_error(errc::invalid_argument, "train: model '" + c.name +
                                                  "' is not a class-conditional 2-D sin-cos DiT (the only kind "
                                                  "gfdit trains so far)");
  param_layout L;
  L.config = c;
  L.specs = dit::weight_specs(c);
  for (const auto& s : L.specs) {
    L.offset.push_back(L.total);
    L.total += s.numel();
  }
  return L;
}

std::int64_t param_layout::at(std::string_view name) const {
  for (std::size_t i = 0; i < specs.size(); ++i)
    if (specs[i].name == name) return offset[i];
  return -1;
}

namespace {

// A linear layer's place in the flat vector.
struct lin {
  std::int64_t w = 0, b = 0;
  int out = 0, in = 0;
};
lin find_linear(const param_layout& L, const std::string& name, int out, int in) {
  return {L.at(name + ".weight"), L.at(name + ".bias"), out, in};
}

struct block_lin {
  lin ada, qkv, proj, fc1, fc2;
};

// One sample through the model, keeping what the backward needs.
template <class T>
class sample_pass {
 public:
  sample_pass(const param_layout& L, std::span<const T> p) : c_(L.config), p_(p.data()) {
    H_ = c_.hidden, NH_ = c_.heads, D_ = c_.head_dim(), P_ = c_.patch_dim(), M_ = H_ * c_.mlp_ratio;
    n_ = static_cast<int>(c_.image_tokens());
    x_embed_ = find_linear(L, "x_embed", H_, P_);
    t_fc1_ = find_linear(L, "t_embed.fc1", H_, 256);
    t_fc2_ = find_linear(L, "t_embed.fc2", H_, H_);
    table_ = L.at("y_embed.table");
    for (int i = 0; i < c_.depth; ++i) {
      const std::string b = "blocks." + std::to_string(i);
      blocks_.push_back({find_linear(L, b + ".ada", 6 * H_, H_), find_linear(L, b + ".qkv", 3 * H_, H_),
                         find_linear(L, b + ".proj", H_, H_), find_linear(L, b + ".fc1", M_, H_),
                         find_linear(L, b + ".fc2", H_, M_)});
    }
    final_ada_ = find_linear(L, "final.ada", 2 * H_, H_);
    final_linear_ = find_linear(L, "final.linear", P_, H_);
  }

  std::vector<T> forward(std::span<const T> xt, T t, int label) {
    tokens_.assign(xt.begin(), xt.end());
    label_ = label;
    // Conditioning: timestep MLP plus the class row.
    feat_.resize(256);
    dit::timestep_features(static_cast<double>(t), c_.freq_shift, feat_.data());
    t1_.resize(H_), t1s_.resize(H_), cond_.resize(H_), silu_c_.resize(H_);
    run(t_fc1_, feat_.data(), 1, t1_.data());
    for (int i = 0; i < H_; ++i) t1s_[i] = dit::silu(t1_[i]);
    run(t_fc2_, t1s_.data(), 1, cond_.data());
    const T* row = p_ + table_ + static_cast<std::int64_t>(label) * H_;
    for (int i = 0; i < H_; ++i) cond_[i] += row[i];
    for (int i = 0; i < H_; ++i) silu_c_[i] = dit::silu(cond_[i]);
    // Embedding plus positions.
    std::vector<T> x(static_cast<std::size_t>(n_) * H_), pe(H_);
    run(x_embed_, tokens_.data(), n_, x.data());
    for (int l = 0; l < n_; ++l) {
      dit::sincos_position(c_, l, pe.data());
      for (int i = 0; i < H_; ++i) x[l * H_ + i] += pe[i];
    }
    cache_.resize(blocks_.size());
    for (std::size_t b = 0; b < blocks_.size(); ++b) x = block_forward(blocks_[b], cache_[b], std::move(x));
    // Final layer.
    xf_ = std::move(x);
    fmod_.resize(2 * H_);
    run(final_ada_, silu_c_.data(), 1, fmod_.data());
    fhat_.resize(xf_.size()), frstd_.resize(n_), fh_.resize(xf_.size());
    for (int l = 0; l < n_; ++l)
      modulated_norm_forward(&xf_[l * H_], H_, &fmod_[0], &fmod_[H_], &fh_[l * H_], &fhat_[l * H_], &frstd_[l]);
    std::vector<T> v(static_cast<std::size_t>(n_) * P_);
    run(final_linear_, fh_.data(), n_, v.data());
    return v;
  }

  void backward(const std::vector<T>& dv, T* g) {
    std::vector<T> dsilu_c(H_, T(0)), dfmod(2 * H_, T(0)), dfh(fh_.size(), T(0)), dx(xf_.size(), T(0));
    back(final_linear_, fh_.data(), dv.data(), n_, dfh.data(), g);
    for (int l = 0; l < n_; ++l)
      modulated_norm_backward(&dfh[l * H_], H_, &fmod_[H_], &fhat_[l * H_], frstd_[l], &dx[l * H_], &dfmod[0],
                              &dfmod[H_]);
    back(final_ada_, silu_c_.data(), dfmod.data(), 1, dsilu_c.data(), g);
    for (std::size_t b = blocks_.size(); b-- > 0;) dx = block_backward(blocks_[b], cache_[b], dx, dsilu_c.data(), g);
    back(x_embed_, tokens_.data(), dx.data(), n_, nullptr, g);
    std::vector<T> dcond(H_), dt1s(H_, T(0)), dt1(H_);
    for (int i = 0; i < H_; ++i) dcond[i] = dsilu_c[i] * silu_grad(cond_[i]);
    T* drow = g + table_ + static_cast<std::int64_t>(label_) * H_;
    for (int i = 0; i < H_; ++i) drow[i] += dcond[i];
    back(t_fc2_, t1s_.data(), dcond.data(), 1, dt1s.data(), g);
    for (int i = 0; i < H_; ++i) dt1[i] = dt1s[i] * silu_grad(t1_[i]);
    back(t_fc1_, feat_.data(), dt1.data(), 1, nullptr, g);
  }

 private:
  struct block_cache {
    std::vector<T> mod, x_in, hat1, rstd1, h1, qkv, p, o, y_attn, x_mid, hat2, rstd2, h2, a1, g1, y_mlp;
  };

  void run(const lin& f, const T* x, std::int64_t rows, T* y) const {
    linear_forward(p_ + f.w, p_ + f.b, x, rows, f.in, f.out, y);
  }
  void back(const lin& f, const T* x, const T* dy, std::int64_t rows, T* dx, T* g) const {
    linear_backward(p_ + f.w, x, dy, rows, f.in, f.out, dx, g + f.w, g + f.b);
  }

  std::vector<T> block_forward(const block_lin& W, block_cache& k, std::vector<T> x) {
    const std::size_t nh = static_cast<std::size_t>(n_) * H_;
    k.mod.resize(6 * H_);
    run(W.ada, silu_c_.data(), 1, k.mod.data());
    const T* md = k.mod.data();
    k.x_in = std::move(x);
    k.hat1.resize(nh), k.rstd1.resize(n_), k.h1.resize(nh);
    for (int l = 0; l < n_; ++l)
      modulated_norm_forward(&k.x_in[l * H_], H_, md, md + H_, &k.h1[l * H_], &k.hat1[l * H_], &k.rstd1[l]);
    k.qkv.resize(nh * 3);
    run(W.qkv, k.h1.data(), n_, k.qkv.data());
    k.p.resize(static_cast<std::size_t>(NH_) * n_ * n_), k.o.resize(nh);
    for (int h = 0; h < NH_; ++h)
      attention_forward(&k.qkv[h * D_], &k.qkv[H_ + h * D_], &k.qkv[2 * H_ + h * D_], n_, D_, 3 * H_, &k.o[h * D_], H_,
                        &k.p[static_cast<std::size_t>(h) * n_ * n_]);
    k.y_attn.resize(nh);
    run(W.proj, k.o.data(), n_, k.y_attn.data());
    k.x_mid = k.x_in;
    for (int l = 0; l < n_; ++l)
      for (int i = 0; i < H_; ++i) k.x_mid[l * H_ + i] += md[2 * H_ + i] * k.y_attn[l * H_ + i];
    k.hat2.resize(nh), k.rstd2.resize(n_), k.h2.resize(nh);
    for (int l = 0; l < n_; ++l)
      modulated_norm_forward(&k.x_mid[l * H_], H_, md + 3 * H_, md + 4 * H_, &k.h2[l * H_], &k.hat2[l * H_],
                             &k.rstd2[l]);
    k.a1.resize(static_cast<std::size_t>(n_) * M_), k.g1.resize(k.a1.size());
    run(W.fc1, k.h2.data(), n_, k.a1.data());
    for (std::size_t i = 0; i < k.a1.size(); ++i) k.g1[i] = dit::gelu_tanh(k.a1[i]);
    k.y_mlp.resize(nh);
    run(W.fc2, k.g1.data(), n_, k.y_mlp.data());
    std::vector<T> out = k.x_mid;
    for (int l = 0; l < n_; ++l)
      for (int i = 0; i < H_; ++i) out[l * H_ + i] += md[5 * H_ + i] * k.y_mlp[l * H_ + i];
    return out;
  }

  // dx: the gradient at the block's output; returns the gradient at its input.
  std::vector<T> block_backward(const block_lin& W, const block_cache& k, const std::vector<T>& dx, T* dsilu_c, T* g) {
    const std::size_t nh = static_cast<std::size_t>(n_) * H_;
    const T* md = k.mod.data();
    std::vector<T> dmod(6 * H_, T(0));
    // MLP half: out = x_mid + gate2 * fc2(gelu(fc1(norm2(x_mid)))).
    std::vector<T> dy(nh), dg1(k.g1.size(), T(0)), da1(k.a1.size()), dh2(nh, T(0)), dmid = dx;
    for (int l = 0; l < n_; ++l)
      for (int i = 0; i < H_; ++i) {
        dy[l * H_ + i] = dx[l * H_ + i] * md[5 * H_ + i];
        dmod[5 * H_ + i] += dx[l * H_ + i] * k.y_mlp[l * H_ + i];
      }
    back(W.fc2, k.g1.data(), dy.data(), n_, dg1.data(), g);
    for (std::size_t i = 0; i < da1.size(); ++i) da1[i] = dg1[i] * gelu_tanh_grad(k.a1[i]);
    back(W.fc1, k.h2.data(), da1.data(), n_, dh2.data(), g);
    for (int l = 0; l < n_; ++l)
      modulated_norm_backward(&dh2[l * H_], H_, md + 4 * H_, &k.hat2[l * H_], k.rstd2[l], &dmid[l * H_], &dmod[3 * H_],
                              &dmod[4 * H_]);
    // Attention half: x_mid = x_in + gate1 * proj(attention(qkv(norm1(x_in)))).
    std::vector<T> din = dmid, dout(nh, T(0)), dqkv(nh * 3, T(0)), dh1(nh, T(0)), ds(n_);
    for (int l = 0; l < n_; ++l)
      for (int i = 0; i < H_; ++i) {
        dy[l * H_ + i] = dmid[l * H_ + i] * md[2 * H_ + i];
        dmod[2 * H_ + i] += dmid[l * H_ + i] * k.y_attn[l * H_ + i];
      }
    back(W.proj, k.o.data(), dy.data(), n_, dout.data(), g);
    for (int h = 0; h < NH_; ++h)
      attention_backward(&k.qkv[h * D_], &k.qkv[H_ + h * D_], &k.qkv[2 * H_ + h * D_],
                         &k.p[static_cast<std::size_t>(h) * n_ * n_], &dout[h * D_], n_, D_, 3 * H_, H_, &dqkv[h * D_],
                         &dqkv[H_ + h * D_], &dqkv[2 * H_ + h * D_], ds.data());
    back(W.qkv, k.h1.data(), dqkv.data(), n_, dh1.data(), g);
    for (int l = 0; l < n_; ++l)
      modulated_norm_backward(&dh1[l * H_], H_, md + H_, &k.hat1[l * H_], k.rstd1[l], &din[l * H_], &dmod[0],
                              &dmod[H_]);
    back(W.ada, silu_c_.data(), dmod.data(), 1, dsilu_c, g);
    return din;
  }

  const dit::model_config& c_;
  const T* p_;
  int H_ = 0, NH_ = 0, D_ = 0, P_ = 0, M_ = 0, n_ = 0;
  lin x_embed_, t_fc1_, t_fc2_, final_ada_, final_linear_;
  std::int64_t table_ = 0;
  std::vector<block_lin> blocks_;
  std::vector<T> tokens_, feat_, t1_, t1s_, cond_, silu_c_, xf_, fmod_, fhat_, frstd_, fh_;
  int label_ = 0;
  std::vector<block_cache> cache_;
};

}  // namespace

template <class T>
std::vector<T> velocity(const param_layout& L, std::span<const T> params, std::span<const T> xt, T t, int label) {
  return sample_pass<T>(L, params).forward(xt, t, label);
}

template <class T>
T loss_and_grad(const param_layout& L, std::span<const T> params, const flow_sample<T>& s, std::span<T> grad) {
  sample_pass<T> pass(L, params);
  const std::vector<T> v = pass.forward(s.xt, s.t, s.label);
  std::vector<T> dv(v.size());
  T loss = 0;
  const T inv = T(1) / static_cast<T>(v.size());
  for (std::size_t i = 0; i < v.size(); ++i) {
    const T e = v[i] - s.target[i];
    loss += e * e;
    dv[i] = T(2) * e * inv;
  }
  pass.backward(dv, grad.data());
  return loss * inv;
}

template std::vector<float> velocity<float>(const param_layout&, std::span<const float>, std::span<const float>, float,
                                            int);
template std::vector<double> velocity<double>(const param_layout&, std::span<const double>, std::span<const double>,
                                              double, int);
template float loss_and_grad<float>(const param_layout&, std::span<const float>, const flow_sample<float>&,
                                    std::span<float>);
template double loss_and_grad<double>(const param_layout&, std::span<const double>, const flow_sample<double>&,
                                      std::span<double>);

}  // namespace gfdit::train
