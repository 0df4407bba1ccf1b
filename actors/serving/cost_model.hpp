#pragma once
// Latency of a trajectory task per (model, tokens, stage, degree), from a profile file.
//
// Per stage, the fitted form is
//   t(T, d) = a + b*T + (bp*T + c*T^2) / d_eff + comm(d, T)
//   d_eff   = min(d, max(1, T / min_tokens_per_rank))      (small inputs stop scaling)
//   comm    = (d > 1) * (alpha*(d-1) + gamma*T*(d-1)/d)     (denoise steps only)
// b is the part that does not split across ranks, bp and c the parts that do. The floor on
// tokens per rank is why a 512^2 image is fastest on one GPU while 1536^2 wants four.
// Profiles are YAML (JSON is valid YAML); stock profiles are compiled in, GPU profiling
// replaces them later.
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "actors/serving/stage.hpp"
#include "common/result.hpp"

namespace gfdit {

struct stage_coeffs {
  double a_us = 0.0;   // fixed
  double b_us = 0.0;   // per token, not split
  double bp_us = 0.0;  // per token, split across ranks
  double c_us = 0.0;   // per token^2, split across ranks
};

struct model_profile {
  std::string name;
  std::string description;
  // Shape rules (admission checks them) and the latent token count they imply.
  bool video = false;
  std::int32_t spatial_stride = 16;  // pixels per token side (VAE factor x patch)
  std::int32_t temporal_stride = 4;  // frames per latent frame (video)
  std::int32_t min_side = 64;
  std::int32_t max_side = 4096;
  std::int32_t max_frames = 1;
  std::int32_t max_steps = 1000;
  std::int32_t max_degree = 8;
  double min_tokens_per_rank = 1024.0;
  stage_coeffs prepare, step, decode;
  double comm_alpha_us = 0.0;
  double comm_gamma_us = 0.0;
  // Moving a request's state to another group: flat cost plus bytes over the link.
  double reshard_fixed_us = 50000.0;
  double bytes_per_token = 256.0;
  double link_gbps = 100.0;  // GB/s
};

class cost_model {
 public:
  // Parses one profile (a map with `model:`) or several (`models: [...]`), YAML or JSON.
  static result<cost_model> from_yaml(std::string_view text);
  static result<cost_model> from_file(const std::string& path);
  // The profiles shipped in actors/serving/profiles/, compiled in.
  static const cost_model& stock();
  // A profile file's models, or the stock ones for an empty path: what every serving shell,
  // replay and tool loads from its `profiles` setting.
  static result<std::shared_ptr<const cost_model>> load(const std::string& path);

  // Adds or replaces profiles (later files override earlier ones).
  result<void> merge_yaml(std::string_view text);

  const model_profile* find(std::string_view model) const;
  std::vector<std::string> models() const;

  static std::int64_t tokens(const model_profile& p, std::int32_t width, std::int32_t height,
                             std::int32_t frames) noexcept;
  // One prepare or decode task, or ONE denoising step, at `degree`.
  static double stage_us(const model_profile& p, stage s, std::int64_t tokens, std::int32_t degree) noexcept;
  // A task: prepare/decode once, or `steps` denoising steps.
  static double task_us(const model_profile& p, stage s, std::int64_t tokens, std::int32_t steps,
                        std::int32_t degree) noexcept;
  // The whole request (prepare, all steps, decode) at one degree.
  static double request_us(const model_profile& p, std::int64_t tokens, std::int32_t steps,
                           std::int32_t degree) noexcept;
  static double reshard_us(const model_profile& p, std::int64_t tokens) noexcept;
  static std::int64_t state_bytes(const model_profile& p, std::int64_t tokens) noexcept;
  // Powers of two up to the profile's max_degree: the degrees groups may have.
  static std::vector<std::int32_t> degrees(const model_profile& p);

 private:
  std::map<std::string, model_profile, std::less<>> profiles_;
};

}  // namespace gfdit
