#pragma once
// From stage times measured on real workers (gfdit profile) to the cost profile the scheduler and
// the simulator read. A served checkpoint has one size, so the fit is in the degree alone:
//   step(d) = a + B/d + alpha*(d-1)      written as a_us, bp_us = B/T, comm alpha_us
// with min_tokens_per_rank = 1 (every measured degree is taken at its word). One degree: all of
// the step splits (B = step(1)); two: a and B exactly, no alpha; three or more: least squares,
// refitted without a term that comes out negative.
#include <cstdint>
#include <string>
#include <vector>

#include "actors/serving/cost_model.hpp"

namespace gfdit {

// Medians of one degree's runs, microseconds.
struct degree_timing {
  std::int32_t degree = 1;
  double prepare_us = 0, step_us = 0, decode_us = 0;
  double reshard_us = -1;  // moving the latent from one worker onto the group; < 0: not measured
};

struct measured_model {
  std::string name, description;
  std::int32_t width = 0, height = 0;  // pixels
  std::int32_t spatial_stride = 1;     // pixels per token side
  std::int64_t tokens = 0;
  double state_bytes_per_token = 0;    // the latent a worker holds between tasks
  std::vector<degree_timing> degrees;  // ascending, at least one
  std::vector<std::string> notes;      // degrees not measured, and why (written as comments)
};

result<model_profile> fit_profile(const measured_model& m);
// The profile as YAML that cost_model::from_yaml reads back to the same numbers.
std::string profile_yaml(const model_profile& p);

}  // namespace gfdit
