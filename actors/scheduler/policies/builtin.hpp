#pragma once
// Factories of the built-in policies, registered by the registry on first use.
#include <string>
#include <utility>
#include <vector>

#include "actors/scheduler/policy.hpp"

namespace gfdit {

std::unique_ptr<policy> make_static_policy(std::string_view arg);        // "static[:degree]"
std::unique_ptr<policy> make_fcfs_elastic_policy(std::string_view arg);  // "fcfs-elastic"
std::unique_ptr<policy> make_srtf_policy(std::string_view arg);          // "srtf"
std::unique_ptr<policy> make_edf_best_fit_policy(std::string_view arg);  // "edf-best-fit[:margin]"

std::vector<std::pair<std::string, policy_factory>> builtin_policies();

}  // namespace gfdit
