// A process of the bus rendezvous test:
//   world_bus_peer --name N --bind EP --hub
//       hosts the membership actor (and so the world hub), named "membership"
//   world_bus_peer --name N --bind EP --peer NODE=EP --rank R --size S --world W --timeout-ms T --out FILE
//       hosts one actor that joins a host-backend World through the hub, exactly as the cpu
//       worker does (world_joiner + bus_rendezvous), then on the group of every rank in reverse
//       order runs a deterministic all_reduce, an all_gather of the ranks and a barrier. It
//       writes to FILE "ok\n<hash of the sum's bits>\n<gathered ranks>\n", or
//       "error <errc>\n<what>\n", and stops the process.
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <numeric>

#include "actors/runtime/node.hpp"
#include "actors/runtime/registry.hpp"
#include "actors/serving/serving_actor_types.hpp"
#include "actors/worker/world_joiner.hpp"
#include "kernels/collectives/world.hpp"
#include "messages/system.hpp"
#include "tests/actors/worker/world_bus_values.hpp"

namespace gfdit {
namespace {

struct rank_options {
  int rank = 0, size = 0;
  std::string world = "test", out;
  std::int64_t timeout_ms = 10000;
};

void write_atomically(const std::string& path, const std::string& text) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream f(tmp, std::ios::trunc);
    f << text;
  }
  std::filesystem::rename(tmp, path);
}

result<std::string> join_and_reduce(coll::rendezvous& rv, const rank_options& o) {
  coll::world_options wo;
  wo.backend = coll::backend_kind::host;
  wo.buffer_bytes = std::size_t{1} << 16;
  wo.channels = 1;
  wo.timeout = std::chrono::milliseconds(o.timeout_ms);
  auto w = coll::World::create(rv, wo);
  if (!w) return w.err();
  std::vector<std::int32_t> members(static_cast<std::size_t>(o.size));
  std::iota(members.rbegin(), members.rend(), 0);  // size-1, ..., 1, 0
  auto g = (*w)->form(members, /*epoch=*/1);
  if (!g) return g.err();
  std::vector<float> x(testing::world_bus_count), y(x.size());
  for (std::size_t i = 0; i < x.size(); ++i) x[i] = testing::world_bus_value(o.rank, i);
  if (auto r = (*w)->all_reduce(*g, coll::dtype::f32, x.data(), y.data(), x.size()); !r) return r.err();
  const std::int32_t mine = o.rank;
  std::vector<std::int32_t> ranks(members.size());
  if (auto r = (*w)->all_gather(*g, &mine, ranks.data(), sizeof mine); !r) return r.err();
  if (auto r = (*w)->barrier(*g); !r) return r.err();
  std::string gathered;
  for (auto r : ranks) gathered += (gathered.empty() ? "" : ",") + std::to_string(r);
  return std::to_string(testing::bits_hash(y)) + "\n" + gathered + "\n";
}

class world_peer : public actor {
 public:
  explicit world_peer(rank_options o) : o_(std::move(o)) {}

  result<void> on_configure(context& ctx) override {
    ctx.on<msg::world_blobs>([this](const msg::world_blobs& m, const envelope&) {
      if (joiner_) joiner_->deliver(m);
    });
    ctx.on_delivery_failure([this](const error& e, const envelope& env) {
      auto f = decode<msg::delivery_failure>(env.payload);
      if (joiner_ && f) joiner_->on_delivery_failure(e, f->type_id);
    });
    return {};
  }

  result<void> on_activate(context& ctx) override {
    auto pump = ctx.waker([this, &ctx] {
      if (joiner_->poll(ctx)) ctx.request_stop();
    });
    joiner_ = std::make_unique<world_joiner>(
        "membership", o_.world, o_.rank, o_.size,
        [this](coll::rendezvous& rv) {
          auto r = join_and_reduce(rv, o_);
          write_atomically(
              o_.out, r ? "ok\n" + *r : "error " + std::string(to_string(r.err().code)) + "\n" + r.err().what + "\n");
          return r ? result<void>{} : result<void>(r.err());
        },
        std::move(pump));
    return {};
  }

  void on_shutdown(context&) override { joiner_.reset(); }

 private:
  rank_options o_;
  std::unique_ptr<world_joiner> joiner_;
};

}  // namespace
}  // namespace gfdit

int main(int argc, char** argv) {
  using namespace gfdit;
  (void)serving_actor_types();
  node_options opt;
  rank_options ro;
  bool hub = false;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    const bool has = i + 1 < argc;
    if (a == "--name" && has)
      opt.name = argv[++i];
    else if (a == "--bind" && has)
      opt.bind = argv[++i];
    else if (a == "--peer" && has) {
      const std::string p = argv[++i];
      opt.peers.push_back({p.substr(0, p.find('=')), p.substr(p.find('=') + 1)});
    } else if (a == "--hub")
      hub = true;
    else if (a == "--rank" && has)
      ro.rank = std::stoi(argv[++i]);
    else if (a == "--size" && has)
      ro.size = std::stoi(argv[++i]);
    else if (a == "--world" && has)
      ro.world = argv[++i];
    else if (a == "--timeout-ms" && has)
      ro.timeout_ms = std::stoll(argv[++i]);
    else if (a == "--out" && has)
      ro.out = argv[++i];
    else
      return std::fprintf(stderr, "bad argument '%s'\n", a.c_str()), 2;
  }
  auto n = node::create(opt);
  if (!n) return 1;
  result<void> added = hub ? (*n)->add("membership", actor_registry::global().make("gfdit.membership"))
                           : (*n)->add("peer-" + opt.name, std::make_unique<world_peer>(ro));
  if (!added) return std::fprintf(stderr, "%s\n", added.err().what.c_str()), 2;
  if (auto r = (*n)->start(); !r) return std::fprintf(stderr, "%s\n", r.err().what.c_str()), 1;
  return (*n)->run_until_signal();
}
