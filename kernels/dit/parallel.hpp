#pragma once
// The sequence-parallel group a forward runs on: a World and a Group of it (Ulysses degree =
// group size), or no World at all for a plain single-process run.
#include <cstdint>
#include <span>

#include "common/result.hpp"
#include "kernels/collectives/group.hpp"
#include "kernels/collectives/types.hpp"
#include "kernels/collectives/world.hpp"

namespace gfdit::dit {

struct sp_group {
  coll::World* world = nullptr;
  coll::Group group;  // the Ulysses group (sequence parallel)
  // CFG-parallel, the second dimension: two Ulysses groups of equal size run the conditional and
  // the unconditional pass side by side; `cfg_pair` is {my counterpart in the conditional group,
  // my counterpart in the unconditional group} (same token shard), member 0 conditional. The two
  // Ulysses groups must use different channels, and the pair a third one. Both halves end each
  // step holding the same latent shard.
  bool cfg_parallel = false;
  coll::Group cfg_pair;

  int degree() const noexcept { return world ? group.size() : 1; }
  int index() const noexcept { return world ? group.self() : 0; }
};

// The groups of one parallel layout, as this rank sees them. Plain: one Ulysses group over the
// members. CFG-parallel: the first half of the members runs the conditional pass (channel 0), the
// second half the unconditional one (channel 1), pairs on channel 2; the world needs 3 channels.
// `holder` is the group whose members hold the latent between tasks (reshard from it); under
// CFG-parallel `uncond` must receive a copy too (a second reshard from the same source).
struct parallel_layout {
  coll::Group holder;
  coll::Group uncond;  // CFG-parallel only
  bool cfg_parallel = false;
  bool active = false;  // this rank computes in this layout
  sp_group sp;
};
// Uses epochs epoch .. epoch+2.
result<parallel_layout> form_layout(coll::World& w, std::span<const std::int32_t> members, bool cfg_parallel,
                                    std::uint64_t epoch);

// Token ranges: image and text tokens are split separately, each balanced over the members in
// member order, so the latent shard is exactly what World::reshard's token_layout describes.
struct shard_range {
  std::int64_t begin = 0, count = 0;
};
inline shard_range token_shard(std::int64_t tokens, int degree, int index) noexcept {
  return {coll::shard_begin(tokens, degree, index), coll::shard_rows(tokens, degree, index)};
}

}  // namespace gfdit::dit
