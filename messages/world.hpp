#pragma once
// The world family: setting up a collectives World through the bus. World::create needs a few
// all_gathers of small blobs among the ranks (rank 0's session nonce, shm names, cudaIpc
// handles, the NCCL unique id). Each rank sends one WorldJoin per round to the hub (hosted by
// the membership actor); when every rank of the round has joined, the hub answers each of them
// with one WorldBlobs holding all the blobs in rank order, or with the reason the round failed.
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "messages/message.hpp"

namespace gfdit::msg {

// Raw bytes (handles and ids are binary): msgpack `bin`, shown as hex by echo.
using world_bytes = std::vector<char>;

struct world_join {
  static constexpr std::string_view type_name = "world.join";
  static constexpr std::uint16_t type_version = 1;
  std::string world;            // several worlds may share one hub
  std::int32_t rank = 0;        // 0 .. size-1
  std::int32_t size = 0;        // every rank of a world names the same size
  std::uint32_t round = 0;      // the rank's n-th all_gather, from 0
  std::int64_t timeout_ms = 0;  // the round fails if not complete this long after it opened
  world_bytes blob;
  GFDIT_FIELDS(world, rank, size, round, timeout_ms, blob)
};

// The answer to every rank of a round. error empty: blobs[r] is rank r's blob. Otherwise the
// round failed and blobs is empty: timed_out when a rank was missing at the deadline, else the
// joins disagreed (a rank joined twice, sizes differ, an invalid join).
struct world_blobs {
  static constexpr std::string_view type_name = "world.blobs";
  static constexpr std::uint16_t type_version = 1;
  std::string world;
  std::uint32_t round = 0;
  std::vector<world_bytes> blobs;
  std::string error;
  bool timed_out = false;
  GFDIT_FIELDS(world, round, blobs, error, timed_out)
};

}  // namespace gfdit::msg
