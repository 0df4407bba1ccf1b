// Shape handling, 16-bit conversions and the fp64 CPU reference.
#include "kernels/attention/attention.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

namespace gfdit::attention {

std::string_view to_string(schedule s) noexcept {
  switch (s) {
    case schedule::ascending:
      return "ascending";
    case schedule::descending:
      return "descending";
    case schedule::shift:
      return "shift";
    case schedule::spt:
      return "spt";
    case schedule::atomic:
      return "atomic";
  }
  return "unknown";
}

result<schedule> parse_schedule(std::string_view name) {
  for (schedule s : all_schedules)
    if (to_string(s) == name) return s;
  return make_error(errc::invalid_argument, "unknown attention schedule '" + std::string(name) + "'");
}

bool is_deterministic(schedule s) noexcept { return s != schedule::atomic; }

bool schedule_supports(schedule s, mask_kind m) noexcept { return !(s == schedule::shift && m == mask_kind::causal); }

std::int64_t problem::total_tokens() const noexcept {
  return varlen() ? cu_seqlens.back() : std::int64_t(batch) * seqlen;
}

float problem::softmax_scale() const noexcept { return scale != 0.0f ? scale : 1.0f / std::sqrt(float(head_dim)); }

std::int64_t problem::row_offset(int b, int h, int s) const noexcept {
  if (varlen()) return (std::int64_t(cu_seqlens[b] + s) * heads + h) * head_dim;
  return ((std::int64_t(b) * heads + h) * seqlen + s) * head_dim;
}

std::int64_t problem::lse_offset(int b, int h, int s) const noexcept {
  if (varlen()) return std::int64_t(h) * total_tokens() + cu_seqlens[b] + s;
  return (std::int64_t(b) * heads + h) * seqlen + s;
}

result<void> validate(const problem& p) {
  if (p.batch <= 0 || p.heads <= 0)
    return make_error(errc::invalid_argument, "attention: batch and heads must be positive");
  if (p.head_dim != 64 && p.head_dim != 128)
    return make_error(errc::invalid_argument,
                      "attention: head_dim must be 64 or 128, got " + std::to_string(p.head_dim));
  if (!std::isfinite(p.scale)) return make_error(errc::invalid_argument, "attention: scale must be finite");
  if (p.varlen()) {
    if (p.cu_seqlens.size() != std::size_t(p.batch) + 1)
      return make_error(errc::invalid_argument, "attention: cu_seqlens must have batch+1 entries");
    if (p.cu_seqlens[0] != 0) return make_error(errc::invalid_argument, "attention: cu_seqlens must start at 0");
    for (int b = 0; b < p.batch; ++b)
      if (p.cu_seqlens[b + 1] <= p.cu_seqlens[b])
        return make_error(errc::invalid_argument,
                          "attention: every sequence needs at least one token (cu_seqlens "
                          "must increase strictly)");
  } else if (p.seqlen <= 0) {
    return make_error(errc::invalid_argument, "attention: seqlen must be positive");
  }
  if (p.elements() >= (std::int64_t(1) << 31))
    return make_error(errc::too_large, "attention: tensors above 2^31 elements are not supported");
  return {};
}

// --- 16-bit conversions ---------------------------------------------------------------------
float bf16_to_float(std::uint16_t bits) noexcept {
  std::uint32_t u = std::uint32_t(bits) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

std::uint16_t float_to_bf16(float x) noexcept {
  std::uint32_t u;
  std::memcpy(&u, &x, 4);
  if (std::isnan(x)) return std::uint16_t((u >> 16) | 0x40);
  u += 0x7FFF + ((u >> 16) & 1);
  return std::uint16_t(u >> 16);
}

float fp16_to_float(std::uint16_t h) noexcept {
  std::uint32_t sign = std::uint32_t(h & 0x8000) << 16;
  std::uint32_t exp = (h >> 10) & 0x1F;
  std::uint32_t man = h & 0x3FF;
  std::uint32_t u;
  if (exp == 0) {
    if (man == 0) {
      u = sign;
    } else {  // subnormal: normalise
      int e = -1;
      do {
        man <<= 1;
        ++e;
      } while (!(man & 0x400));
      u = sign | (std::uint32_t(127 - 15 - e) << 23) | ((man & 0x3FF) << 13);
    }
  } else if (exp == 31) {
    u = sign | 0x7F800000 | (man << 13);
  } else {
    u = sign | ((exp + 127 - 15) << 23) | (man << 13);
  }
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

std::uint16_t float_to_fp16(float x) noexcept {
  std::uint32_t u;
  std::memcpy(&u, &x, 4);
  std::uint16_t sign = std::uint16_t((u >> 16) & 0x8000);
  if (std::isnan(x)) return sign | 0x7E00;
  float a = std::fabs(x);
  if (a >= 65520.0f) return sign | 0x7C00;         // rounds to infinity
  if (a < 6.103515625e-05f) {                      // subnormal range: multiples of 2^-24
    int m = int(std::nearbyint(a * 16777216.0f));  // round-half-even under the default mode
    return sign | std::uint16_t(m);
  }
  std::uint32_t au = u & 0x7FFFFFFF;
  std::uint32_t exp = (au >> 23) - 127 + 15;
  std::uint32_t man = au & 0x7FFFFF;
  std::uint32_t r = (exp << 10) | (man >> 13);
  std::uint32_t rem = man & 0x1FFF;
  if (rem > 0x1000 || (rem == 0x1000 && (r & 1))) ++r;  // may carry into the exponent: fine
  return sign | std::uint16_t(r);
}

float to_float(dtype t, std::uint16_t bits) noexcept {
  return t == dtype::bf16 ? bf16_to_float(bits) : fp16_to_float(bits);
}
std::uint16_t from_float(dtype t, float x) noexcept { return t == dtype::bf16 ? float_to_bf16(x) : float_to_fp16(x); }

// --- CPU reference ---------------------------------------------------------------------------
namespace {

bool visible(const problem& p, int qi, int ki) { return p.mask == mask_kind::full || ki <= qi; }

// One (b, h) at a time; every sum runs in key order, so results do not depend on batch layout.
void forward_head(const problem& p, int b, int h, const double* q, const double* k, const double* v, double* o,
                  double* lse) {
  const int len = p.seq_len(b), d = p.head_dim;
  const double scale = p.softmax_scale();
  std::vector<double> s(len);
  for (int i = 0; i < len; ++i) {
    const double* qi = q + p.row_offset(b, h, i);
    double mx = -std::numeric_limits<double>::infinity();
    for (int j = 0; j < len; ++j) {
      if (!visible(p, i, j)) continue;
      const double* kj = k + p.row_offset(b, h, j);
      double acc = 0;
      for (int x = 0; x < d; ++x) acc += qi[x] * kj[x];
      s[j] = acc * scale;
      mx = std::max(mx, s[j]);
    }
    double sum = 0;
    for (int j = 0; j < len; ++j)
      if (visible(p, i, j)) sum += (s[j] = std::exp(s[j] - mx));
    double* oi = o + p.row_offset(b, h, i);
    for (int x = 0; x < d; ++x) oi[x] = 0;
    for (int j = 0; j < len; ++j) {
      if (!visible(p, i, j)) continue;
      const double* vj = v + p.row_offset(b, h, j);
      const double w = s[j] / sum;
      for (int x = 0; x < d; ++x) oi[x] += w * vj[x];
    }
    if (lse) lse[p.lse_offset(b, h, i)] = mx + std::log(sum);
  }
}

void backward_head(const problem& p, int b, int h, const double* q, const double* k, const double* v,
                   const double* dout, double* dq, double* dk, double* dv) {
  const int len = p.seq_len(b), d = p.head_dim;
  const double scale = p.softmax_scale();
  std::vector<double> prob(std::size_t(len) * len, 0.0), dp(len);
  std::vector<double> o(d);
  for (int i = 0; i < len; ++i) {
    const double* qi = q + p.row_offset(b, h, i);
    double mx = -std::numeric_limits<double>::infinity();
    double* pi = prob.data() + std::size_t(i) * len;
    for (int j = 0; j < len; ++j) {
      if (!visible(p, i, j)) continue;
      const double* kj = k + p.row_offset(b, h, j);
      double acc = 0;
      for (int x = 0; x < d; ++x) acc += qi[x] * kj[x];
      pi[j] = acc * scale;
      mx = std::max(mx, pi[j]);
    }
    double sum = 0;
    for (int j = 0; j < len; ++j)
      if (visible(p, i, j)) sum += (pi[j] = std::exp(pi[j] - mx));
    for (int j = 0; j < len; ++j) pi[j] = visible(p, i, j) ? pi[j] / sum : 0.0;
  }
  for (int j = 0; j < len; ++j) {
    double* dkj = dk + p.row_offset(b, h, j);
    double* dvj = dv + p.row_offset(b, h, j);
    for (int x = 0; x < d; ++x) dkj[x] = dvj[x] = 0;
  }
  for (int i = 0; i < len; ++i) {
    const double* doi = dout + p.row_offset(b, h, i);
    const double* qi = q + p.row_offset(b, h, i);
    const double* pi = prob.data() + std::size_t(i) * len;
    // D_i = rowsum(dO_i * O_i), with O recomputed exactly.
    std::fill(o.begin(), o.end(), 0.0);
    for (int j = 0; j < len; ++j) {
      const double* vj = v + p.row_offset(b, h, j);
      for (int x = 0; x < d; ++x) o[x] += pi[j] * vj[x];
    }
    double di = 0;
    for (int x = 0; x < d; ++x) di += doi[x] * o[x];
    double* dqi = dq + p.row_offset(b, h, i);
    for (int x = 0; x < d; ++x) dqi[x] = 0;
    for (int j = 0; j < len; ++j) {
      if (!visible(p, i, j)) continue;
      const double* vj = v + p.row_offset(b, h, j);
      const double* kj = k + p.row_offset(b, h, j);
      double dpij = 0;
      for (int x = 0; x < d; ++x) dpij += doi[x] * vj[x];
      const double ds = pi[j] * (dpij - di) * scale;
      double* dkj = dk + p.row_offset(b, h, j);
      double* dvj = dv + p.row_offset(b, h, j);
      for (int x = 0; x < d; ++x) {
        dvj[x] += pi[j] * doi[x];
        dkj[x] += ds * qi[x];
        dqi[x] += ds * kj[x];
      }
    }
  }
}

std::vector<double> widen(const problem& p, const std::uint16_t* x) {
  std::vector<double> out(std::size_t(p.elements()));
  for (std::size_t i = 0; i < out.size(); ++i) out[i] = to_float(p.type, x[i]);
  return out;
}

}  // namespace

result<void> reference_forward_f64(const problem& p, const double* q, const double* k, const double* v, double* o,
                                   double* lse) {
  if (auto r = validate(p); !r) return r;
  for (int b = 0; b < p.batch; ++b)
    for (int h = 0; h < p.heads; ++h) forward_head(p, b, h, q, k, v, o, lse);
  return {};
}

result<void> reference_backward_f64(const problem& p, const double* q, const double* k, const double* v,
                                    const double* dout, double* dq, double* dk, double* dv) {
  if (auto r = validate(p); !r) return r;
  for (int b = 0; b < p.batch; ++b)
    for (int h = 0; h < p.heads; ++h) backward_head(p, b, h, q, k, v, dout, dq, dk, dv);
  return {};
}

result<void> reference_forward(const problem& p, const std::uint16_t* q, const std::uint16_t* k, const std::uint16_t* v,
                               float* o, float* lse) {
  if (auto r = validate(p); !r) return r;
  auto qd = widen(p, q), kd = widen(p, k), vd = widen(p, v);
  std::vector<double> od(qd.size()), lsed(std::size_t(p.rows()));
  if (auto r = reference_forward_f64(p, qd.data(), kd.data(), vd.data(), od.data(), lsed.data()); !r) return r;
  std::transform(od.begin(), od.end(), o, [](double x) { return float(x); });
  if (lse) std::transform(lsed.begin(), lsed.end(), lse, [](double x) { return float(x); });
  return {};
}

result<void> reference_backward(const problem& p, const std::uint16_t* q, const std::uint16_t* k,
                                const std::uint16_t* v, const std::uint16_t* dout, float* dq, float* dk, float* dv) {
  if (auto r = validate(p); !r) return r;
  auto qd = widen(p, q), kd = widen(p, k), vd = widen(p, v), dod = widen(p, dout);
  std::vector<double> dqd(qd.size()), dkd(qd.size()), dvd(qd.size());
  if (auto r =
          reference_backward_f64(p, qd.data(), kd.data(), vd.data(), dod.data(), dqd.data(), dkd.data(), dvd.data());
      !r)
    return r;
  std::transform(dqd.begin(), dqd.end(), dq, [](double x) { return float(x); });
  std::transform(dkd.begin(), dkd.end(), dk, [](double x) { return float(x); });
  std::transform(dvd.begin(), dvd.end(), dv, [](double x) { return float(x); });
  return {};
}

}  // namespace gfdit::attention
