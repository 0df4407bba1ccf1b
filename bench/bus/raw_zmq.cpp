#include "bench/bus/raw_zmq.hpp"

#include <chrono>
#include <cstdio>
#include <stdexcept>

#include <zmq.h>

namespace gfdit::bench {
namespace {

void check(int rc, const char* what) {
  if (rc < 0) throw std::runtime_error(std::string(what) + ": " + zmq_strerror(zmq_errno()));
}

using clock = std::chrono::steady_clock;

}  // namespace

int raw_server(const std::string& endpoint, const curve_key_pair* server_key) {
  void* ctx = zmq_ctx_new();
  void* s = zmq_socket(ctx, ZMQ_ROUTER);
  if (server_key) {
    const int server = 1;
    check(zmq_setsockopt(s, ZMQ_CURVE_SERVER, &server, sizeof server), "curve_server");
    check(zmq_setsockopt(s, ZMQ_CURVE_SECRETKEY, server_key->secret_key.c_str(), 41), "curve_secretkey");
  }
  const int hwm = 100000;
  check(zmq_setsockopt(s, ZMQ_RCVHWM, &hwm, sizeof hwm), "rcvhwm");
  check(zmq_setsockopt(s, ZMQ_SNDHWM, &hwm, sizeof hwm), "sndhwm");
  check(zmq_bind(s, endpoint.c_str()), "bind");
  std::printf("ready\n");
  std::fflush(stdout);
  while (true) {
    zmq_msg_t id, body;
    zmq_msg_init(&id);
    zmq_msg_init(&body);
    if (zmq_msg_recv(&id, s, 0) < 0 || zmq_msg_recv(&body, s, 0) < 0) break;
    if (zmq_msg_size(&body) > 0 && static_cast<const char*>(zmq_msg_data(&body))[0] == raw_ack) {
      zmq_msg_send(&id, s, ZMQ_SNDMORE);
      zmq_msg_send(&body, s, 0);
    } else {
      zmq_msg_close(&id);
      zmq_msg_close(&body);
    }
  }
  zmq_close(s);
  zmq_ctx_term(ctx);
  return 0;
}

raw_client::raw_client(const std::string& endpoint, const curve_key_pair* own, const std::string& server_public) {
  ctx = zmq_ctx_new();
  sock = zmq_socket(ctx, ZMQ_DEALER);
  if (own) {
    check(zmq_setsockopt(sock, ZMQ_CURVE_SERVERKEY, server_public.c_str(), 41), "curve_serverkey");
    check(zmq_setsockopt(sock, ZMQ_CURVE_PUBLICKEY, own->public_key.c_str(), 41), "curve_publickey");
    check(zmq_setsockopt(sock, ZMQ_CURVE_SECRETKEY, own->secret_key.c_str(), 41), "curve_secretkey");
  }
  const int hwm = 100000;
  check(zmq_setsockopt(sock, ZMQ_SNDHWM, &hwm, sizeof hwm), "sndhwm");
  check(zmq_setsockopt(sock, ZMQ_RCVHWM, &hwm, sizeof hwm), "rcvhwm");
  check(zmq_connect(sock, endpoint.c_str()), "connect");
}

raw_client::~raw_client() {
  const int linger = 0;
  zmq_setsockopt(sock, ZMQ_LINGER, &linger, sizeof linger);
  zmq_close(sock);
  zmq_ctx_term(ctx);
}

std::vector<double> raw_client::round_trips_us(std::size_t payload, int iterations) {
  std::string frame(payload, 'x');
  frame[0] = raw_ack;
  std::vector<char> buf(payload + 16);
  std::vector<double> out;
  for (int i = 0; i < iterations; ++i) {
    const auto t0 = clock::now();
    check(zmq_send(sock, frame.data(), frame.size(), 0), "send");
    zmq_msg_t m;
    zmq_msg_init(&m);
    check(zmq_msg_recv(&m, sock, 0), "recv");
    zmq_msg_close(&m);
    out.push_back(std::chrono::duration<double, std::micro>(clock::now() - t0).count());
  }
  return out;
}

double raw_client::throughput_msgs_per_s(std::size_t payload, int messages) {
  std::string frame(payload, 'x');
  frame[0] = raw_quiet;
  const auto t0 = clock::now();
  for (int i = 0; i < messages; ++i) {
    if (i == messages - 1) frame[0] = raw_ack;
    check(zmq_send(sock, frame.data(), frame.size(), 0), "send");
  }
  zmq_msg_t m;
  zmq_msg_init(&m);
  check(zmq_msg_recv(&m, sock, 0), "recv");
  zmq_msg_close(&m);
  return messages / std::chrono::duration<double>(clock::now() - t0).count();
}

}  // namespace gfdit::bench
