// A process hosting registered actor types, for the live serving tests:
//   serving_test_node --name N --bind EP [--peer NODE=EP]... --actor TYPE NAME [JSON_PARAMS]...
#include <cstdio>
#include <cstring>

#include "actors/runtime/node.hpp"
#include "actors/runtime/registry.hpp"
#include "actors/serving/serving_actor_types.hpp"

int main(int argc, char** argv) {
  using namespace gfdit;
  (void)serving_actor_types();
  node_options opt;
  struct spec {
    std::string type, name;
    nlohmann::json params = nlohmann::json::object();
  };
  std::vector<spec> actors;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--name" && i + 1 < argc)
      opt.name = argv[++i];
    else if (a == "--bind" && i + 1 < argc)
      opt.bind = argv[++i];
    else if (a == "--peer" && i + 1 < argc) {
      const std::string p = argv[++i];
      opt.peers.push_back({p.substr(0, p.find('=')), p.substr(p.find('=') + 1)});
    } else if (a == "--actor" && i + 3 < argc) {
      actors.push_back({argv[i + 1], argv[i + 2], nlohmann::json::parse(argv[i + 3])});
      i += 3;
    } else {
      std::fprintf(stderr, "bad argument '%s'\n", a.c_str());
      return 2;
    }
  }
  auto n = node::create(opt);
  if (!n) return 1;
  for (auto& s : actors) {
    auto a = actor_registry::global().make(s.type);
    if (!a) return std::fprintf(stderr, "unknown actor type '%s'\n", s.type.c_str()), 2;
    if (auto r = (*n)->add(s.name, std::move(a), s.params); !r)
      return std::fprintf(stderr, "%s\n", r.err().what.c_str()), 2;
  }
  if (auto r = (*n)->start(); !r) return std::fprintf(stderr, "%s\n", r.err().what.c_str()), 1;
  return (*n)->run_until_signal();
}
