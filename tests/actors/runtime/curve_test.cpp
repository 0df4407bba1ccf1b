// CurveZMQ on the bus: key files, the speaker check (pure), and a keyed peer process attacked
// over real sockets by processes (ZeroMQ contexts) with no key, a wrong key, a plain TCP
// socket, and a valid key of another node; the keyed pair still serves.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <zmq.h>

#include <csignal>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "actors/runtime/curve_keys.hpp"
#include "actors/runtime/log_limiter.hpp"
#include "actors/runtime/node.hpp"
#include "actors/runtime/speaker_check.hpp"
#include "messages/example.hpp"
#include "messages/system.hpp"
#include "tests/actors/runtime/test_support.hpp"

namespace gfdit {
namespace {

namespace fs = std::filesystem;
using testing::child_process;
using testing::collector;
using testing::lambda_actor;
using namespace std::chrono_literals;

struct key_dir {
  std::string path;
  key_dir() {
    char t[] = "/tmp/gfdit-curve-test-XXXXXX";
    path = ::mkdtemp(t);
  }
  ~key_dir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  curve_key_pair make(const std::string& name) const {
    auto p = make_curve_key_pair();
    EXPECT_TRUE(p);
    EXPECT_TRUE(write_key_pair(path, name, *p));
    return *p;
  }
};

TEST(curve_keys, pairs_are_written_0600_and_read_back) {
  ASSERT_TRUE(curve_available());
  key_dir d;
  const auto made = d.make("alpha");
  struct stat st {};
  ASSERT_EQ(::stat((d.path + "/alpha.key").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  auto back = read_key_pair(d.path + "/alpha.key");
  ASSERT_TRUE(back) << back.err().what;
  EXPECT_EQ(back->public_key, made.public_key);
  EXPECT_EQ(back->secret_key, made.secret_key);
  auto again = write_key_pair(d.path, "alpha", made);
  ASSERT_FALSE(again);
  EXPECT_NE(again.err().what.find("exists already"), std::string::npos);
  d.make("beta");
  auto ring = read_key_ring(d.path);
  ASSERT_TRUE(ring) << ring.err().what;
  EXPECT_EQ(ring->by_name.size(), 2u);
  EXPECT_EQ(ring->by_public.at(made.public_key), "alpha");
}

TEST(curve_keys, refuses_a_readable_secret_a_bad_key_and_a_mismatched_pub) {
  key_dir d;
  d.make("alpha");
  ::chmod((d.path + "/alpha.key").c_str(), 0640);
  auto r = read_key_pair(d.path + "/alpha.key");
  ASSERT_FALSE(r);
  EXPECT_NE(r.err().what.find("chmod 600"), std::string::npos) << r.err().what;
  ::chmod((d.path + "/alpha.key").c_str(), 0600);
  const auto other = make_curve_key_pair();
  std::ofstream(d.path + "/alpha.pub") << other->public_key << "\n";
  r = read_key_pair(d.path + "/alpha.key");
  ASSERT_FALSE(r);
  EXPECT_NE(r.err().what.find("not the public key"), std::string::npos) << r.err().what;
  std::ofstream(d.path + "/bad.pub") << "not a key\n";
  auto ring = read_key_ring(d.path);
  ASSERT_FALSE(ring);
  EXPECT_NE(ring.err().what.find("bad.pub: not a CurveZMQ key"), std::string::npos) << ring.err().what;
}

TEST(speaker_check, a_key_speaks_only_for_its_own_node_and_actors) {
  speaker_check c({{"sched", "control"}, {"w0", "worker-0"}});
  EXPECT_TRUE(c.check("control", "sched"));
  EXPECT_FALSE(c.check("worker-0", "sched"));
  EXPECT_TRUE(c.check("worker-0", "$node:worker-0"));
  EXPECT_FALSE(c.check("worker-0", "$node:control"));
  EXPECT_FALSE(c.check("worker-0", "nobody"));
  // A hello for another node, or claiming another node's actor, is refused.
  EXPECT_FALSE(c.hello("worker-0", {"control", "ipc://x", {"sched"}, {}, false}));
  EXPECT_FALSE(c.hello("worker-0", {"worker-0", "ipc://x", {"w0", "sched"}, {}, false}));
  EXPECT_TRUE(c.hello("worker-0", {"worker-0", "ipc://x", {"w0"}, {}, false}));
  // A tool's node "KEY~..." belongs to KEY; its actor to the node that announced it first.
  EXPECT_TRUE(c.hello("operator", {"operator~cli-1", "ipc://t", {"operator~cli-1"}, {}, false}));
  EXPECT_TRUE(c.check("operator", "operator~cli-1"));
  EXPECT_FALSE(c.check("worker-0", "operator~cli-1"));
  EXPECT_FALSE(c.hello("worker-0", {"worker-0", "ipc://x", {"operator~cli-1"}, {}, false}));
  EXPECT_FALSE(c.hello("operator", {"operatorX~cli-1", "ipc://t", {}, {}, false}));
  // After its goodbye the tool's actor is nobody's.
  EXPECT_TRUE(c.hello("operator", {"operator~cli-1", "", {}, {}, false}));
  EXPECT_FALSE(c.check("operator", "operator~cli-1"));
}

TEST(log_limiter, one_line_a_second_and_the_count_of_those_held) {
  log_limiter l;
  const auto t0 = log_limiter::clock::now();
  std::uint64_t held = 99;
  EXPECT_TRUE(l.allow(t0, held));
  EXPECT_EQ(held, 0u);
  EXPECT_FALSE(l.allow(t0 + 10ms, held));
  EXPECT_FALSE(l.allow(t0 + 500ms, held));
  EXPECT_TRUE(l.allow(t0 + 1001ms, held));
  EXPECT_EQ(held, 2u);
}

// A raw ZeroMQ socket in a context of its own: to the peer it is another process.
struct rogue {
  void* ctx = zmq_ctx_new();
  void* s = nullptr;
  // `server_key` empty with `own`: a CURVE server.
  rogue(int type, const std::string& endpoint, const curve_key_pair* own, const std::string& server_key,
        bool bind = false) {
    s = zmq_socket(ctx, type);
    const int linger = 0;
    zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof linger);
    if (own && server_key.empty()) {
      const int server = 1;
      zmq_setsockopt(s, ZMQ_CURVE_SERVER, &server, sizeof server);
      zmq_setsockopt(s, ZMQ_CURVE_SECRETKEY, own->secret_key.c_str(), 41);
    } else if (own) {
      zmq_setsockopt(s, ZMQ_CURVE_SERVERKEY, server_key.c_str(), 41);
      zmq_setsockopt(s, ZMQ_CURVE_PUBLICKEY, own->public_key.c_str(), 41);
      zmq_setsockopt(s, ZMQ_CURVE_SECRETKEY, own->secret_key.c_str(), 41);
    }
    if (bind)
      zmq_bind(s, endpoint.c_str());
    else
      zmq_connect(s, endpoint.c_str());
  }
  ~rogue() {
    zmq_close(s);
    zmq_ctx_term(ctx);
  }
  void send(const envelope& env) {
    const std::string f = encode_envelope(env);
    zmq_send(s, f.data(), f.size(), ZMQ_DONTWAIT);
  }
  std::string endpoint() const {
    char buf[256] = {};
    std::size_t len = sizeof buf;
    zmq_getsockopt(s, ZMQ_LAST_ENDPOINT, buf, &len);
    return buf;
  }
  bool received_within(std::chrono::milliseconds t) {
    zmq_pollitem_t item{s, 0, ZMQ_POLLIN, 0};
    return zmq_poll(&item, 1, static_cast<long>(t.count())) > 0;
  }
};

envelope ping_from(const std::string& sender, const std::string& data) {
  envelope e;
  e.type_id = type_id_of<msg::ping>;
  e.version = msg::ping::type_version;
  e.sender = sender;
  e.destination = "echo";
  e.seq = 1;
  e.payload = encode(msg::ping{7, data});
  return e;
}

envelope hello_from(const std::string& node, const std::string& endpoint, std::vector<std::string> topics) {
  envelope e;
  e.type_id = type_id_of<msg::node_hello>;
  e.version = msg::node_hello::type_version;
  e.sender = "$node:" + node;
  e.destination = "$node";
  e.payload = encode(msg::node_hello{node, endpoint, {node}, std::move(topics), false});
  return e;
}

TEST(curve_bus, rogues_can_neither_inject_nor_read_and_a_valid_key_speaks_only_for_its_node) {
  key_dir d;
  const auto peer_key = d.make("peer");
  const auto probe_key = d.make("probe");
  const auto thief_key = d.make("thief");  // a valid key of the graph, but another node's
  const auto stranger = *make_curve_key_pair();
  const int port = testing::free_tcp_port();
  const std::string ep = "tcp://127.0.0.1:" + std::to_string(port);
  child_process peer({GFDIT_TEST_PEER, "peer", ep, d.path});

  collector<std::string> pongs;
  node_options o{.name = "probe", .bind = "tcp://127.0.0.1:*", .peers = {{"peer", ep}}, .peer_timeout = 20000ms};
  o.curve = bus_curve{probe_key, *read_key_ring(d.path)};
  o.wiring = {{"echo", "peer"}, {"probe", "probe"}};
  auto n = node::create(o);
  ASSERT_TRUE(n);
  ASSERT_TRUE((*n)->add("probe", std::make_unique<lambda_actor>([&](context& ctx) {
                          ctx.on<msg::pong>([&](const msg::pong& p, const envelope&) { pongs.push(p.data); });
                          ctx.subscribe<msg::pong>(
                              "pong", [&](const msg::pong& p, const envelope&) { pongs.push("topic " + p.data); });
                          return result<void>{};
                        })));
  auto started = (*n)->start();
  ASSERT_TRUE(started) << started.err().what;
  // The keyed pair serves.
  ASSERT_TRUE((*n)->inject(ping_from("probe", "keyed")));
  ASSERT_TRUE(pongs.wait_for(1, 10s));
  EXPECT_EQ(pongs.items().back(), "keyed");

  // Injection: each rogue sends "ping from probe" to echo, which would answer probe.
  {
    rogue plain(ZMQ_DEALER, ep, nullptr, "");
    plain.send(ping_from("probe", "no key"));
    rogue wrong(ZMQ_DEALER, ep, &stranger, peer_key.public_key);
    wrong.send(ping_from("probe", "wrong key"));
    rogue thief(ZMQ_DEALER, ep, &thief_key, peer_key.public_key);
    thief.send(ping_from("probe", "valid key, not probe's"));
    thief.send(hello_from("probe", "tcp://127.0.0.1:1", {}));  // a hello for another node
    // A plain TCP socket writing a ZeroMQ greeting and garbage.
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<std::uint16_t>(port));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0) {
      const char junk[] = "\xff\0\0\0\0\0\0\0\x01\x7f\x03\x00NULL ping from probe, please answer";
      (void)!::write(fd, junk, sizeof junk);
    }
    std::this_thread::sleep_for(1500ms);
    ::close(fd);
    EXPECT_EQ(pongs.size(), 1u) << "a rogue's ping was delivered: " << pongs.items().back();

    // The same raw path with probe's own key is delivered: the refusals above are the keys'.
    rogue own(ZMQ_DEALER, ep, &probe_key, peer_key.public_key);
    own.send(ping_from("probe", "own key"));
    ASSERT_TRUE(pongs.wait_for(2, 10s));
    EXPECT_EQ(pongs.items().back(), "own key");
  }

  // Reading: a rogue without a key announces itself as a subscriber of "pong" and listens.
  {
    rogue listener(ZMQ_ROUTER, "tcp://127.0.0.1:*", nullptr, "", true);
    rogue plain(ZMQ_DEALER, ep, nullptr, "");
    plain.send(hello_from("rogue", listener.endpoint(), {"pong"}));
    std::this_thread::sleep_for(300ms);
    envelope topic_ping = ping_from("probe", "published");
    topic_ping.kind = route::topic;
    topic_ping.destination = "ping";
    ASSERT_TRUE((*n)->inject(topic_ping));
    ASSERT_TRUE(pongs.wait_for(3, 10s));
    EXPECT_EQ(pongs.items().back(), "topic published");
    EXPECT_FALSE(listener.received_within(1000ms)) << "a rogue without a key received the graph's traffic";
  }
  // After all that, the keyed pair still serves.
  ASSERT_TRUE((*n)->inject(ping_from("probe", "still serving")));
  ASSERT_TRUE(pongs.wait_for(4, 10s));
  EXPECT_EQ(pongs.items().back(), "still serving");
  (*n)->stop();
}

TEST(curve_bus, a_client_checks_the_servers_key) {
  key_dir d;
  const auto a_key = d.make("a");
  d.make("b");
  // An impostor bound where node "b" should be, with a key that is not b's.
  const auto impostor_key = *make_curve_key_pair();
  rogue impostor(ZMQ_ROUTER, "tcp://127.0.0.1:*", &impostor_key, "", true);
  node_options o{
      .name = "a", .bind = "tcp://127.0.0.1:*", .peers = {{"b", impostor.endpoint()}}, .peer_timeout = 1500ms};
  o.curve = bus_curve{a_key, *read_key_ring(d.path)};
  auto n = node::create(o);
  ASSERT_TRUE(n);
  auto r = (*n)->start();  // its hello never reaches the impostor
  EXPECT_FALSE(r);
  EXPECT_FALSE(impostor.received_within(200ms));
  (*n)->stop();
}

}  // namespace
}  // namespace gfdit

namespace gfdit {
namespace {

std::size_t count_lines_with(const std::string& text, const std::string& what) {
  std::size_t n = 0;
  for (std::size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

// A peer can send junk at will: it is counted and logged, at most a line a second with the
// count held back, and the node goes on serving (the log cannot be flooded).
TEST(hostile_frames, junk_is_logged_a_line_a_second_and_the_node_serves_on) {
  const int port = testing::free_tcp_port();
  const std::string ep = "tcp://127.0.0.1:" + std::to_string(port);
  const std::string log = (fs::temp_directory_path() / ("gfdit-junk-" + std::to_string(::getpid()) + ".log")).string();
  child_process peer({GFDIT_TEST_PEER, "peer", ep}, log);
  std::this_thread::sleep_for(500ms);
  {
    rogue r(ZMQ_DEALER, ep, nullptr, "");
    for (int i = 0; i < 2000; ++i) {
      const std::string junk = "not an envelope " + std::to_string(i);
      zmq_send(r.s, junk.data(), junk.size(), 0);
    }
    envelope bad = ping_from("rogue", "x");
    bad.payload = "\xc1\xc1\xc1";  // msgpack's never-used byte: the ping does not decode
    for (int i = 0; i < 2000; ++i) r.send(bad);
    std::this_thread::sleep_for(1500ms);
    // After a second, one more of each is written with the count of those held back.
    zmq_send(r.s, "junk", 4, 0);
    r.send(bad);
    std::this_thread::sleep_for(500ms);
  }
  peer.signal(SIGTERM);
  EXPECT_EQ(peer.wait(10s), 0) << "the node did not stop cleanly after the junk";
  std::stringstream ss;
  ss << std::ifstream(log).rdbuf();
  const std::string text = ss.str();
  fs::remove(log);
  const auto frames = count_lines_with(text, "dropped a frame that did not decode");
  const auto payloads = count_lines_with(text, "that did not decode: ");
  EXPECT_GE(frames, 1u) << text;
  EXPECT_LE(frames, 4u) << text;
  EXPECT_LE(payloads, 8u) << text;  // frames' and payloads' lines together
  EXPECT_NE(text.find("more since the last line"), std::string::npos) << text;
}

}  // namespace
}  // namespace gfdit
