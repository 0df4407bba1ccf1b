#include "launch/lib/graph_peer.hpp"

#include <unistd.h>

#include "messages/system.hpp"

namespace gfdit::launch {
namespace {
constexpr const char* node_address = "$node";
}

result<std::unique_ptr<graph_peer>> graph_peer::join(const std::vector<graph_node>& nodes,
                                                     std::vector<std::string> topics, on_message fn,
                                                     std::chrono::milliseconds timeout, std::optional<tool_key> key) {
  std::unique_ptr<graph_peer> p(new graph_peer());
  const std::string id = std::to_string(::getpid());
  p->node_ = key ? key->node_for("cli-" + id) : "gfdit-cli-" + id;
  p->actor_ = p->node_;
  p->topics_ = std::move(topics);
  p->fn_ = std::move(fn);
  bus_options bo;
  bo.node = p->node_;
  bo.bind = "tcp://127.0.0.1:*";
  bo.send_timeout = std::chrono::milliseconds(2000);
  bo.linger = std::chrono::milliseconds(500);
  if (key) bo.curve = std::move(key->curve);
  graph_peer* self = p.get();
  auto b = bus::create(
      bo, {[self](envelope&& e, const std::string&) { self->receive(std::move(e)); }, [](send_failure&&) {}});
  if (!b) return b.err();
  p->bus_ = std::move(*b);
  for (const auto& n : nodes) {
    p->bus_->add_peer(n.node, n.endpoint);
    p->peers_.push_back(n.node);
  }
  for (const auto& n : p->peers_) p->greet(n, false, true);
  std::unique_lock lock(p->mu_);
  p->cv_.wait_for(lock, timeout, [&] { return p->greeted_.size() >= p->peers_.size(); });
  return p;
}

graph_peer::~graph_peer() {
  for (const auto& n : peers_) greet(n, true, false);
  bus_->flush(std::chrono::milliseconds(1000));
  bus_.reset();  // its thread calls receive(): stop it while the members still live
}

void graph_peer::greet(const std::string& peer, bool leaving, bool want_reply) {
  msg::node_hello h;
  h.node = node_;
  h.endpoint = leaving ? "" : bus_->endpoint();
  if (!leaving) {
    h.actors = {actor_};
    h.topics = topics_;
  }
  h.want_reply = want_reply;
  envelope env;
  env.type_id = type_id_of<msg::node_hello>;
  env.version = msg::node_hello::type_version;
  env.sender = std::string(node_address) + ":" + node_;
  env.destination = node_address;
  env.payload = encode(h);
  bus_->post(peer, env);
}

void graph_peer::receive(envelope&& env) {
  if (env.destination == node_address) {
    if (!env.is<msg::node_hello>()) return;
    auto h = decode<msg::node_hello>(env.payload);
    if (!h) return;
    std::lock_guard lock(mu_);
    greeted_.insert(h->node);
    for (const auto& a : h->actors) actor_nodes_[a] = h->node;
    cv_.notify_all();
    return;
  }
  if ((env.kind == route::reply || env.kind == route::failure) && env.destination == actor_) {
    std::lock_guard lock(mu_);
    replies_.emplace(env.correlation, std::move(env));
    cv_.notify_all();
    return;
  }
  if (env.kind == route::topic && fn_) fn_(env);
}

std::vector<std::string> graph_peer::actors() const {
  std::lock_guard lock(mu_);
  std::vector<std::string> out;
  for (const auto& [a, _] : actor_nodes_) out.push_back(a);
  return out;
}

result<envelope> graph_peer::request(const std::string& actor, std::uint32_t type_id, std::uint16_t version,
                                     std::string payload, std::chrono::milliseconds timeout) {
  std::string peer;
  std::uint64_t corr = 0;
  {
    std::lock_guard lock(mu_);
    auto it = actor_nodes_.find(actor);
    if (it == actor_nodes_.end()) {
      std::string names;
      for (const auto& [a, _] : actor_nodes_) names += (names.empty() ? "" : ", ") + a;
      return make_error(errc::not_found, "no actor '" + actor + "' in the graph (actors: " + names + ")");
    }
    peer = it->second;
    corr = ++seq_;
  }
  envelope env;
  env.type_id = type_id;
  env.version = version;
  env.seq = corr;
  env.sender = actor_;
  env.destination = actor;
  env.kind = route::direct;
  env.correlation = corr;
  env.trace_id = corr;
  env.payload = std::move(payload);
  bus_->post(peer, env);
  std::unique_lock lock(mu_);
  if (!cv_.wait_for(lock, timeout, [&] { return replies_.count(corr) != 0; }))
    return make_error(errc::timeout,
                      "actor '" + actor + "' did not answer within " + std::to_string(timeout.count()) + " ms");
  envelope rep = std::move(replies_.at(corr));
  replies_.erase(corr);
  if (rep.kind == route::failure) {
    auto f = decode<msg::delivery_failure>(rep.payload);
    return make_error(errc::unreachable, f ? f->reason : "request failed");
  }
  return rep;
}

}  // namespace gfdit::launch
