#pragma once
// The peer of the bus benchmark: raw ZeroMQ with the socket types the bus uses (DEALER client,
// ROUTER server), the same payload sizes, no envelope, no actors.
#include <cstddef>
#include <string>
#include <vector>

namespace gfdit::bench {

// The first byte of a frame says whether the server must answer it.
constexpr char raw_ack = 'A';
constexpr char raw_quiet = 'q';

// Serves until killed: echoes every frame whose first byte is raw_ack.
int raw_server(const std::string& endpoint);

struct raw_client {
  explicit raw_client(const std::string& endpoint);
  ~raw_client();
  std::vector<double> round_trips_us(std::size_t payload, int iterations);
  double throughput_msgs_per_s(std::size_t payload, int messages);
  void* ctx;
  void* sock;
};

}  // namespace gfdit::bench
