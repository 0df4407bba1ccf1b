#include "actors/serving/profile_fit.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>

namespace gfdit {

namespace {

// Least squares over the measured degrees with the basis columns `use` of {1, 1/d, d-1}.
std::array<double, 3> least_squares(const std::vector<degree_timing>& ds, std::array<bool, 3> use) {
  auto basis = [](double d) { return std::array<double, 3>{1.0, 1.0 / d, d - 1.0}; };
  std::vector<int> cols;
  for (int j = 0; j < 3; ++j)
    if (use[j]) cols.push_back(j);
  const int n = static_cast<int>(cols.size());
  // Normal equations, solved by Gaussian elimination (n <= 3).
  double A[3][4] = {};
  for (const auto& t : ds) {
    const auto b = basis(t.degree);
    for (int i = 0; i < n; ++i) {
      for (int j = 0; j < n; ++j) A[i][j] += b[cols[i]] * b[cols[j]];
      A[i][n] += b[cols[i]] * t.step_us;
    }
  }
  for (int i = 0; i < n; ++i) {
    int piv = i;
    for (int r = i + 1; r < n; ++r)
      if (std::fabs(A[r][i]) > std::fabs(A[piv][i])) piv = r;
    std::swap(A[i], A[piv]);
    if (std::fabs(A[i][i]) < 1e-12) continue;
    for (int r = 0; r < n; ++r) {
      if (r == i) continue;
      const double f = A[r][i] / A[i][i];
      for (int c = i; c <= n; ++c) A[r][c] -= f * A[i][c];
    }
  }
  std::array<double, 3> x{0, 0, 0};
  for (int i = 0; i < n; ++i) x[cols[i]] = std::fabs(A[i][i]) < 1e-12 ? 0.0 : A[i][n] / A[i][i];
  return x;
}

// step(d) = x0 + x1/d + x2*(d-1) with every term >= 0, as many terms as the degrees can carry.
std::array<double, 3> fit_step(const std::vector<degree_timing>& ds) {
  if (ds.size() == 1) return {0.0, ds.front().step_us, 0.0};
  std::array<bool, 3> use{true, true, ds.size() >= 3};
  for (int tries = 0; tries < 3; ++tries) {
    auto x = least_squares(ds, use);
    int worst = -1;
    for (int j = 0; j < 3; ++j)
      if (use[j] && x[j] < 0 && (worst < 0 || x[j] < x[worst])) worst = j;
    if (worst < 0) return x;
    use[worst] = false;
  }
  return least_squares(ds, {false, true, false});
}

std::string num(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.6g", v);
  return buf;
}

std::string quoted(const std::string& s) {
  std::string q = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') q += '\\';
    q += c == '\n' ? ' ' : c;
  }
  return q + "\"";
}

}  // namespace

result<model_profile> fit_profile(const measured_model& m) {
  if (m.degrees.empty())
    return make_error(errc::invalid_argument, "profile of '" + m.name + "': no degree was measured");
  if (m.tokens < 1 || m.width < 1 || m.height < 1 || m.spatial_stride < 1)
    return make_error(errc::invalid_argument, "profile of '" + m.name + "': its size is not known");
  model_profile p;
  p.name = m.name;
  p.description = m.description;
  p.video = false;
  p.spatial_stride = m.spatial_stride;
  p.min_side = std::min(m.width, m.height);
  p.max_side = std::max(m.width, m.height);
  p.max_degree = 1;
  for (const auto& d : m.degrees) p.max_degree = std::max(p.max_degree, d.degree);
  p.min_tokens_per_rank = 1.0;
  const auto& one = *std::min_element(m.degrees.begin(), m.degrees.end(),
                                      [](const auto& a, const auto& b) { return a.degree < b.degree; });
  // Every member makes the whole noise (prepare) and one member decodes what the group gathers:
  // neither splits, so the smallest degree's time stands for all.
  p.prepare = {one.prepare_us, 0, 0, 0};
  p.decode = {one.decode_us, 0, 0, 0};
  const auto x = fit_step(m.degrees);
  const double T = static_cast<double>(m.tokens);
  p.step = {x[0], 0, x[1] / T, 0};
  p.comm_alpha_us = x[2];
  p.comm_gamma_us = 0;
  // A move measured at this size carries its bytes in the fixed part.
  double reshard = -1;
  for (const auto& d : m.degrees) reshard = std::max(reshard, d.reshard_us);
  p.bytes_per_token = m.state_bytes_per_token;
  p.link_gbps = 1000.0;
  p.reshard_fixed_us = reshard >= 0 ? std::max(0.0, reshard - p.bytes_per_token * T / (p.link_gbps * 1e3)) : 50000.0;
  return p;
}

std::string profile_yaml(const model_profile& p) {
  auto stage = [](const stage_coeffs& c) {
    return "{a_us: " + num(c.a_us) + ", b_us: " + num(c.b_us) + ", bp_us: " + num(c.bp_us) + ", c_us: " + num(c.c_us) +
           "}";
  };
  std::string y;
  y += "  - model: " + p.name + "\n";
  y += "    description: " + quoted(p.description) + "\n";
  y += "    shape: {video: " + std::string(p.video ? "true" : "false") +
       ", spatial_stride: " + std::to_string(p.spatial_stride) + ", min_side: " + std::to_string(p.min_side) +
       ", max_side: " + std::to_string(p.max_side) + "}\n";
  y += "    max_steps: " + std::to_string(p.max_steps) + "\n";
  y += "    max_degree: " + std::to_string(p.max_degree) + "\n";
  y += "    min_tokens_per_rank: " + num(p.min_tokens_per_rank) + "\n";
  y += "    stages:\n";
  y += "      prepare: " + stage(p.prepare) + "\n";
  y += "      step: " + stage(p.step) + "\n";
  y += "      decode: " + stage(p.decode) + "\n";
  y += "    comm: {alpha_us: " + num(p.comm_alpha_us) + ", gamma_us: " + num(p.comm_gamma_us) + "}\n";
  y += "    reshard: {fixed_us: " + num(p.reshard_fixed_us) + ", bytes_per_token: " + num(p.bytes_per_token) +
       ", gbps: " + num(p.link_gbps) + "}\n";
  return y;
}

}  // namespace gfdit
