#pragma once
// The peer of the bus benchmark: raw ZeroMQ with the socket types the bus uses (DEALER client,
// ROUTER server), the same payload sizes, no envelope, no actors; with keys, CURVE on both.
#include <cstddef>
#include <string>
#include <vector>

#include "actors/runtime/curve_keys.hpp"

namespace gfdit::bench {

// The first byte of a frame says whether the server must answer it.
constexpr char raw_ack = 'A';
constexpr char raw_quiet = 'q';

// Serves until killed: echoes every frame whose first byte is raw_ack.
// `server_key` set: a CURVE server with that pair (no ZAP: it costs nothing per message).
int raw_server(const std::string& endpoint, const curve_key_pair* server_key = nullptr);

struct raw_client {
  // `own` set: a CURVE client of the server whose public key is `server_public`.
  explicit raw_client(const std::string& endpoint, const curve_key_pair* own = nullptr,
                      const std::string& server_public = {});
  ~raw_client();
  std::vector<double> round_trips_us(std::size_t payload, int iterations);
  double throughput_msgs_per_s(std::size_t payload, int messages);
  void* ctx;
  void* sock;
};

}  // namespace gfdit::bench
