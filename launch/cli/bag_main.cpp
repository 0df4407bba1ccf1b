#include "launch/cli/bag_main.hpp"

#include <algorithm>
#include <charconv>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <mutex>
#include <sstream>
#include <thread>

#include <CLI/CLI.hpp>

#include "actors/recorder/recorder_actor.hpp"
#include "actors/recorder/replay.hpp"
#include "actors/runtime/node.hpp"
#include "actors/runtime/registry.hpp"
#include "actors/runtime/tool_key.hpp"
#include "bag/bag_reader.hpp"
#include "bag/bag_writer.hpp"
#include "launch/cli/replay_replace.hpp"
#include "launch/cli/timeline.hpp"
#include "messages/catalog.hpp"

namespace gfdit {
namespace {

int fail(const std::string& what) {
  std::fprintf(stderr, "error: %s\n", what.c_str());
  return 2;
}

// A --type that names no type of the bag matches nothing: say so (on stderr) rather than print
// an empty result that looks like an answer.
void note_unknown_types(const bag::filter& f, const bag::header& h) {
  for (const auto& t : f.types) {
    if (bag::decimal_type_id(t)) continue;
    const bool known = std::any_of(h.catalog.begin(), h.catalog.end(), [&](const auto& row) { return row.name == t; });
    if (!known)
      std::fprintf(stderr,
                   "note: no type '%s' in this bag's catalog (%zu types; `gfdit bag info` lists those it holds)\n",
                   t.c_str(), h.catalog.size());
  }
}

struct filter_args {
  std::vector<std::string> types, actors, topics, senders;
  void add_to(CLI::App& app) {
    app.add_option("--type", types, "only messages of this type (name or id); repeatable")->delimiter(',');
    app.add_option("--actor", actors, "only messages sent by or directed to this actor; repeatable")->delimiter(',');
    app.add_option("--topic", topics, "only messages on this topic; repeatable")->delimiter(',');
    app.add_option("--sender", senders, "only messages sent by this actor; repeatable")->delimiter(',');
  }
  bag::filter make() const {
    bag::filter f;
    f.types = types;
    f.actors = actors;
    f.topics = topics;
    f.senders = senders;
    return f;
  }
};

std::string iso_time(std::int64_t ns) {
  const std::time_t s = static_cast<std::time_t>(ns / 1000000000);
  std::tm tm{};
  gmtime_r(&s, &tm);
  char buf[64];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  char out[96];
  std::snprintf(out, sizeof out, "%s.%03dZ", buf, static_cast<int>((ns / 1000000) % 1000));
  return out;
}

std::string type_name(std::uint32_t id, const bag::header& h) {
  for (const auto& c : h.catalog)
    if (c.id == id) return c.name;
  if (const auto* e = catalog::global().find(id)) return e->name;
  return "#" + std::to_string(id);
}

// Up to this size `info` reads every chunk unless told not to (--no-verify); above it only with
// --verify, as that reads the whole file.
constexpr std::uint64_t verify_by_default_bytes = 256ull << 20;
enum class verify_mode { automatic, on, off };

std::string describe(const bag::damaged_chunk& d) {
  return "offset " + std::to_string(d.offset) + " (" + std::to_string(d.bytes) + " bytes, " +
         (d.count ? std::to_string(*d.count) + " messages" : std::string("messages unknown")) + "): " + d.what;
}

int cmd_info(const std::string& path, bool json, verify_mode vm) {
  auto r = bag::reader::open(path);
  if (!r) return fail(r.err().what);
  const auto& h = (*r)->head();
  const auto& ix = (*r)->idx();
  // The footer's counts say nothing about the chunks' bytes: check them.
  const bool verify =
      vm == verify_mode::on || (vm == verify_mode::automatic && (*r)->file_size() <= verify_by_default_bytes);
  std::vector<bag::damaged_chunk> damaged;
  if (verify && !ix.recovered) {
    damaged = (*r)->verify();
  } else if (verify) {
    // The index scan stopped at the first chunk it could not use; a scan that resynchronises
    // tells damage (valid chunks after it) from an end cut off mid-write.
    auto s = bag::reader::open(path, {.scan = true, .resync = true});
    if (!s) return fail(s.err().what);
    for (const auto& d : (*s)->damaged())
      if (!d.cut_off) damaged.push_back(d);
  }
  const std::string status = !damaged.empty() ? "damaged"
                             : ix.recovered   ? "recovered"
                             : verify         ? "healthy"
                                              : "unverified";
  const std::string verified =
      verify ? "every chunk's CRC checked"
      : vm == verify_mode::off
          ? "chunks not checked (--no-verify)"
          : "chunks not checked (over " + std::to_string(verify_by_default_bytes >> 20) + " MiB; --verify checks them)";
  nlohmann::json damaged_json = nlohmann::json::array();
  for (const auto& d : damaged) {
    nlohmann::json e = {{"offset", d.offset}, {"bytes", d.bytes}, {"check", d.what}};
    if (d.count) e["messages"] = *d.count;
    damaged_json.push_back(e);
  }
  nlohmann::json types = nlohmann::json::object();
  for (const auto& [id, n] : ix.types) types[type_name(id, h)] = n;
  auto counts = [](const std::map<std::string, bag::name_stats>& m) {
    nlohmann::json j = nlohmann::json::object();
    for (const auto& [k, v] : m) j[k] = v.count;
    return j;
  };
  nlohmann::json j = {{"path", path},
                      {"bytes", (*r)->file_size()},
                      {"format", h.version},
                      {"host", h.host},
                      {"start", iso_time(h.start_ns)},
                      {"meta", h.meta},
                      {"launch_bytes", h.launch.size()},
                      {"catalog_types", h.catalog.size()},
                      {"messages", ix.count},
                      {"chunks", ix.chunks.size()},
                      {"first", ix.count ? iso_time(ix.first_ns) : ""},
                      {"last", ix.count ? iso_time(ix.last_ns) : ""},
                      {"duration_s", (ix.last_ns - ix.first_ns) / 1e9},
                      {"index", ix.recovered ? "rebuilt: " + (*r)->recovery_note() : "footer"},
                      {"status", status},
                      {"verified", verify},
                      {"damaged", damaged_json},
                      {"types", types},
                      {"senders", counts(ix.senders)},
                      {"topics", counts(ix.topics)},
                      {"destinations", counts(ix.destinations)}};
  const int rc = damaged.empty() ? 0 : 1;
  if (json) {
    std::printf("%s\n", j.dump(2).c_str());
    return rc;
  }
  std::printf("bag:        %s (%llu bytes)\n", path.c_str(), static_cast<unsigned long long>((*r)->file_size()));
  std::printf("format:     %u, host %s, started %s\n", h.version, h.host.c_str(), iso_time(h.start_ns).c_str());
  std::printf("recorder:   %s\n", h.meta.dump().c_str());
  std::printf("launch:     %zu bytes of launch-file text; catalog of %zu types\n", h.launch.size(), h.catalog.size());
  std::printf("messages:   %llu in %zu chunks, %.3f s", static_cast<unsigned long long>(ix.count), ix.chunks.size(),
              (ix.last_ns - ix.first_ns) / 1e9);
  if (ix.count) std::printf(" (%s .. %s)", iso_time(ix.first_ns).c_str(), iso_time(ix.last_ns).c_str());
  std::printf("\nindex:      %s\n", j["index"].get<std::string>().c_str());
  if (damaged.empty())
    std::printf("status:     %s (%s)\n", status.c_str(), verified.c_str());
  else
    std::printf("status:     damaged: %zu chunk(s) fail their checks; `bag repair` keeps every other chunk\n",
                damaged.size());
  for (const auto& d : damaged) std::printf("  %s\n", describe(d).c_str());
  auto table = [](const char* title, const nlohmann::json& m) {
    if (m.empty()) return;
    std::printf("%s:\n", title);
    for (const auto& [k, v] : m.items())
      std::printf("  %-40s %10llu\n", k.c_str(), static_cast<unsigned long long>(v.get<std::uint64_t>()));
  };
  table("types", types);
  table("senders", j["senders"]);
  table("topics", j["topics"]);
  table("destinations", j["destinations"]);
  return rc;
}

int cmd_echo(const std::string& path, bool json, const bag::filter& f, std::uint64_t from, std::uint64_t limit) {
  auto r = bag::reader::open(path);
  if (!r) return fail(r.err().what);
  note_unknown_types(f, (*r)->head());
  (*r)->set_filter(f);
  if (auto e = (*r)->seek(from); !e) return fail(e.err().what);
  const std::int64_t t0 = (*r)->idx().first_ns;
  static const char* routes[] = {"direct", "topic", "reply", "failure"};
  std::uint64_t shown = 0;
  while (limit == 0 || shown < limit) {
    auto n = (*r)->next();
    if (!n) return fail(n.err().what);
    if (!*n) break;
    const auto& env = (*n)->env;
    auto j = catalog::global().render(env);
    j["index"] = (*n)->index;
    if (j["type"].is_null()) j["type"] = type_name(env.type_id, (*r)->head());
    if (json) {
      std::printf("%s\n", j.dump().c_str());
    } else {
      std::printf("[%llu] +%.6fs %s -> %s (%s) %s %s\n", static_cast<unsigned long long>((*n)->index),
                  (env.time.wall_ns - t0) / 1e9, env.sender.c_str(), env.destination.c_str(),
                  routes[static_cast<int>(env.kind)], j["type"].get<std::string>().c_str(),
                  j.contains("payload") ? j["payload"].dump().c_str() : j["payload_error"].dump().c_str());
    }
    ++shown;
  }
  return 0;
}

int cmd_filter(const std::string& in, const std::string& out, const bag::filter& f, std::uint64_t from,
               std::uint64_t to) {
  auto r = bag::reader::open(in);
  if (!r) return fail(r.err().what);
  note_unknown_types(f, (*r)->head());
  auto h = (*r)->head();
  h.meta["filtered_from"] = in;
  h.meta["filter"] = f.to_json();
  // Written beside and renamed at the end: `out` may be `in` itself, and a failed filter leaves
  // no half bag behind.
  const std::string tmp = out + ".filter-tmp";
  auto w = bag::writer::create(tmp, h);
  if (!w) return fail(w.err().what);
  auto failed = [&](const std::string& what) {
    std::error_code ec;
    std::filesystem::remove(tmp, ec);
    return fail(what);
  };
  (*r)->set_filter(f);
  if (auto e = (*r)->seek(from); !e) return failed(e.err().what);
  std::uint64_t kept = 0;
  while (true) {
    auto n = (*r)->next();
    if (!n) return failed(n.err().what);
    if (!*n || (to && (*n)->index >= to)) break;
    if (auto e = (*w)->write((*n)->env); !e) return failed(e.err().what);
    ++kept;
  }
  if (auto e = (*w)->close(); !e) return failed(e.err().what);
  std::error_code ec;
  std::filesystem::rename(tmp, out, ec);
  if (ec) return failed("cannot move the filtered bag to '" + out + "': " + ec.message());
  std::printf("%llu of %llu messages written to %s\n", static_cast<unsigned long long>(kept),
              static_cast<unsigned long long>((*r)->idx().count), out.c_str());
  return 0;
}

// Never replaces IN unless told (--in-place): a repair that drops damaged chunks must not take
// the only copy of their bytes with it.
int cmd_repair(const std::string& in, std::string out, bool in_place) {
  if (in_place && !out.empty()) return fail("repair: --in-place replaces IN and takes no OUT");
  std::error_code ec;
  if (in_place)
    out = in;
  else if (out.empty())
    out = in + ".repaired";
  else if (out == in || std::filesystem::equivalent(in, out, ec))
    return fail("repair: OUT is IN; pass --in-place to replace it");
  auto rep = bag::repair(in, out);
  if (!rep) return fail(rep.err().what);
  std::printf("repaired %s %s%s: %llu messages in %llu chunks; %llu bytes dropped\n", in.c_str(),
              in_place ? "in place" : "into ", in_place ? "" : out.c_str(),
              static_cast<unsigned long long>(rep->messages), static_cast<unsigned long long>(rep->chunks),
              static_cast<unsigned long long>(rep->dropped_bytes));
  std::uint64_t chunks = 0, messages = 0;
  bool unknown = false;
  for (const auto& s : rep->skipped) {
    std::printf("  %s %s\n", s.cut_off ? "cut off (an incomplete last chunk) at" : "skipped damaged chunk at",
                describe(s).c_str());
    if (s.cut_off) continue;
    ++chunks;
    messages += s.count.value_or(0);
    unknown = unknown || !s.count;
  }
  if (!rep->note.empty()) std::printf("old index: %s\n", rep->note.c_str());
  if (!rep->damaged()) return 0;
  std::printf("DROPPED %llu damaged chunk(s) holding %llu%s messages; %s\n", static_cast<unsigned long long>(chunks),
              static_cast<unsigned long long>(messages), unknown ? " or more" : "",
              in_place ? "they are gone from the bag" : (in + " is unchanged").c_str());
  return 1;
}

int cmd_timeline(const std::string& path, const std::vector<std::string>& outs) {
  auto r = bag::reader::open(path);
  if (!r) return fail(r.err().what);
  auto t = bag::build_timeline(**r);
  if (!t) return fail(t.err().what);
  for (const auto& o : outs) {
    const bool svg = o.size() >= 4 && o.substr(o.size() - 4) == ".svg";
    std::ofstream f(o);
    if (!f) return fail("cannot write '" + o + "'");
    f << (svg ? bag::to_svg(*t) : bag::to_chrome_trace(*t));
    if (!f) return fail("writing '" + o + "' failed");
  }
  std::printf("%zu spans on %zu lanes (%s) -> %zu file(s)\n", t->spans.size(), t->lanes.size(), t->source.c_str(),
              outs.size());
  return 0;
}

std::vector<peer_endpoint> parse_peers(const std::vector<std::string>& peers) {
  std::vector<peer_endpoint> out;
  for (const auto& p : peers) {
    const auto eq = p.find('=');
    if (eq == std::string::npos) throw CLI::ValidationError("--peer", "expects NODE=ENDPOINT, got '" + p + "'");
    out.push_back({p.substr(0, eq), p.substr(eq + 1)});
  }
  return out;
}

// Hosts one tool actor (player or recorder) on a node that joins a running graph.
// With `keys` (a keyed graph's folder), it joins with the tool key (tool_key.hpp), its node named
// "KEY~NAME" so that key may speak for it.
int run_tool_node(const std::string& type, const std::string& node_name, const std::vector<peer_endpoint>& peers,
                  nlohmann::json params, double duration_s, const std::string& keys = {}) {
  (void)recorder_actor_types();
  node_options no{.name = node_name, .peers = peers};
  if (!keys.empty()) {
    auto k = read_tool_key(keys);
    if (!k) return fail(k.err().what);
    no.name = k->node_for(node_name);
    no.curve = std::move(k->curve);
  }
  auto n = node::create(no);
  if (!n) return fail(n.err().what);
  auto a = actor_registry::global().make(type);
  if (!a) return fail("actor type '" + type + "' is not registered");
  if (auto r = (*n)->add(node_name, std::move(a), std::move(params)); !r) return fail(r.err().what);
  std::string names;
  for (const auto& p : peers) names += (names.empty() ? "" : ", ") + p.node + "=" + p.endpoint;
  std::fprintf(stderr, "%s: joining the graph through %s (each peer has %lld s to answer)\n", no.name.c_str(),
               names.c_str(), static_cast<long long>(node_options{}.peer_timeout.count() / 1000));
  if (auto r = (*n)->start(); !r) return fail(r.err().what);
  std::mutex mu;
  std::condition_variable cv;
  bool finished = false;
  std::thread timer;
  if (duration_s > 0)
    timer = std::thread([&] {
      std::unique_lock lock(mu);
      if (!cv.wait_for(lock, std::chrono::duration<double>(duration_s), [&] { return finished; })) (*n)->request_stop();
    });
  const int rc = (*n)->run_until_signal();
  {
    std::lock_guard lock(mu);
    finished = true;
  }
  cv.notify_all();
  if (timer.joinable()) timer.join();
  return rc;
}

void print_outputs(const std::vector<envelope>& outs) {
  for (const auto& o : outs) {
    auto j = catalog::global().render(o);
    for (const char* k : {"seq", "logical", "wall_ns", "trace_id", "sender"}) j.erase(k);
    std::printf("  out: %s\n", j.dump().c_str());
  }
}

int stepper(replay_session& s) {
  const std::size_t n_inputs = s.script().inputs.size();
  std::printf(
      "%zu inputs, %zu recorded outputs. Commands: n|next, r|run N (run to input N), r|run (to the "
      "end), t|type TYPE (run to the next input of TYPE), s|state, q|quit\n",
      n_inputs, s.script().expected.size());
  auto show = [&] {
    const auto& in = s.script().inputs[s.next_input() - 1];
    auto j = catalog::global().render(in.env);
    std::printf("input %zu (bag index %llu): %s\n", s.next_input() - 1, static_cast<unsigned long long>(in.index),
                j.dump().c_str());
    print_outputs(s.last_outputs());
  };
  // Bad input says what was wrong and leaves the replay where it was (it cannot go back).
  std::string line;
  while (true) {
    if (s.outcome().first) {
      std::printf("divergence: %s\n", s.outcome().first->to_json().dump(2).c_str());
      return 1;
    }
    if (s.done()) {
      const auto& o = s.finish();
      if (o.first) continue;
      std::printf("identical (%llu messages)\n", static_cast<unsigned long long>(o.outputs));
      return 0;
    }
    std::printf("[%zu/%zu]> ", s.next_input(), n_inputs);
    std::fflush(stdout);
    if (!std::getline(std::cin, line)) return 0;
    std::istringstream words(line);
    std::string cmd, arg;
    words >> cmd;
    std::getline(words >> std::ws, arg);
    if (cmd == "q" || cmd == "quit" || cmd == "exit") return 0;
    if (cmd.empty() || cmd == "n" || cmd == "next") {
      s.step();
      show();
    } else if (cmd == "s" || cmd == "state") {
      std::printf("%s\n", s.core().state().dump(2).c_str());
    } else if ((cmd == "r" || cmd == "run") && arg.empty()) {
      while (s.step()) {
      }
      if (s.next_input() > 0) show();
    } else if (cmd == "r" || cmd == "run") {
      std::size_t target = 0;
      const auto [end, ec] = std::from_chars(arg.data(), arg.data() + arg.size(), target);
      if (ec != std::errc() || end != arg.data() + arg.size()) {
        std::printf("run: '%s' is not an input number (0..%zu)\n", arg.c_str(), n_inputs);
      } else if (target > n_inputs) {
        std::printf("run: no input %zu, the replay has %zu\n", target, n_inputs);
      } else if (target <= s.next_input()) {
        std::printf("run: at input %zu already, and a replay does not go back\n", s.next_input());
      } else {
        while (s.next_input() < target && s.step()) {
        }
        if (s.next_input() > 0) show();
      }
    } else if ((cmd == "t" || cmd == "type") && !arg.empty()) {
      const std::uint32_t id = bag::type_id_named(arg);
      std::size_t at = s.next_input();
      while (at < n_inputs && s.script().inputs[at].env.type_id != id) ++at;
      if (at == n_inputs) {
        std::printf("type: no input of type '%s' from input %zu on\n", arg.c_str(), s.next_input());
        continue;
      }
      while (s.next_input() <= at && s.step()) {
      }
      if (s.next_input() > 0) show();
    } else {
      std::printf("commands: n|next, r|run N, r|run, t|type TYPE, s|state, q|quit\n");
    }
  }
}

}  // namespace

int bag_main(int argc, char** argv) {
  CLI::App app{"gfdit bag: inspect, filter, repair, draw, play and record bag files"};
  app.require_subcommand(1);
  std::string path, out;
  bool json = false, loop = false;
  std::uint64_t from = 0, to = 0, limit = 0;
  double rate = 1.0, start_s = 0, end_s = 0, duration_s = 0;
  bool force = false;
  std::vector<std::string> outs, peers;
  filter_args fa;

  auto* info = app.add_subcommand("info", "header, counts, time range, index state, damaged chunks (exit 1 if any)");
  info->add_option("bag", path, "bag file")->required();
  info->add_flag("--json", json, "as JSON");
  bool verify = false, no_verify = false;
  auto* verify_flag = info->add_flag("--verify", verify, "check every chunk's CRC (the default up to 256 MiB)");
  info->add_flag("--no-verify", no_verify, "do not read the chunks (counts from the index only)")
      ->excludes(verify_flag);

  auto* echo = app.add_subcommand("echo", "print messages");
  echo->add_option("bag", path, "bag file")->required();
  echo->add_flag("--json", json, "one JSON object per line");
  echo->add_option("--from", from, "start at this message index");
  echo->add_option("--limit", limit, "print at most this many");
  fa.add_to(*echo);

  auto* filt = app.add_subcommand("filter", "write the matching messages to a new bag");
  filt->add_option("in", path, "input bag")->required();
  filt->add_option("out", out, "output bag")->required();
  filt->add_option("--from", from, "first message index");
  filt->add_option("--to", to, "end message index (exclusive)");
  fa.add_to(*filt);

  auto* rep = app.add_subcommand("repair",
                                 "rebuild the index and keep every chunk whose CRC holds (exit 1 if a damaged "
                                 "chunk was dropped)");
  rep->add_option("bag", path, "bag file")->required();
  std::string out_option;
  bool in_place = false;
  auto* rep_out = rep->add_option("out", out, "write the repaired bag here (default: BAG.repaired)");
  rep->add_option("--out", out_option, "the same as OUT")->excludes(rep_out);
  rep->add_flag("--in-place", in_place, "replace BAG (through a temporary file and a rename)");

  auto* tl = app.add_subcommand("timeline", "trajectory tasks per worker over time");
  tl->add_option("bag", path, "bag file")->required();
  tl->add_option("--out", outs, "trace.json (Chrome trace / Perfetto) or gantt.svg; repeatable")->required();

  auto* play = app.add_subcommand("play", "re-publish a bag into a running graph");
  play->add_option("bag", path, "bag file")->required();
  play->add_option("--peer", peers, "NODE=ENDPOINT of the graph's nodes")->required();
  play->add_option("--rate", rate, "speed factor (0: as fast as possible)");
  play->add_flag("--loop", loop, "start again at the end (until Ctrl-C)");
  play->add_option("--start", start_s, "skip the first seconds");
  play->add_option("--end", end_s, "stop this many seconds after the bag's start");
  fa.add_to(*play);

  auto* rec = app.add_subcommand("record", "record the topics of a running graph");
  rec->add_option("out", out, "bag file to write")->required();
  rec->add_option("--peer", peers, "NODE=ENDPOINT of the graph's nodes")->required();
  rec->add_option("--duration", duration_s, "stop after this many seconds (default: Ctrl-C)");
  rec->add_flag("--force", force, "replace OUT if it exists (else that is an error)");
  std::string keys;
  rec->add_option("--keys", keys, "a keyed graph's key folder: join with GFDIT_KEY, else its operator.key");
  fa.add_to(*rec);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }
  try {
    if (*info)
      return cmd_info(path, json, verify ? verify_mode::on : no_verify ? verify_mode::off : verify_mode::automatic);
    if (*echo) return cmd_echo(path, json, fa.make(), from, limit);
    if (*filt) return cmd_filter(path, out, fa.make(), from, to);
    if (*rep) return cmd_repair(path, out.empty() ? out_option : out, in_place);
    if (*tl) return cmd_timeline(path, outs);
    auto join = [](const std::vector<std::string>& v) {
      std::string s;
      for (const auto& x : v) s += (s.empty() ? "" : ",") + x;
      return s;
    };
    nlohmann::json params = {{"topics", join(fa.topics)},
                             {"actors", join(fa.actors)},
                             {"senders", join(fa.senders)},
                             {"types", join(fa.types)}};
    if (*play) {
      params.update({{"path", path},
                     {"rate", rate},
                     {"loop", loop},
                     {"start_s", start_s},
                     {"end_s", end_s},
                     {"stop_at_end", !loop}});
      return run_tool_node("gfdit.player", "bag-player", parse_peers(peers), params, 0);
    }
    if (*rec) {
      if (duration_s < 0) return fail("--duration: " + nlohmann::json(duration_s).dump() + " s; it must be >= 0");
      params.update({{"path", out}, {"source", "subscribe"}, {"overwrite", force}});
      return run_tool_node("gfdit.recorder", "bag-recorder", parse_peers(peers), params, duration_s, keys);
    }
  } catch (const std::exception& e) {
    return fail(e.what());
  }
  return 2;
}

int replay_main(int argc, char** argv) {
  CLI::App app{
      "gfdit replay: re-drive one actor's core from a bag and diff its outputs (--actor), or run "
      "the recorded graph live with some actors replaced by their recordings (--replace)"};
  std::string path, actor, core, policy;
  std::vector<std::string> options;
  bool step = false;
  replace_options ro;
  app.add_option("bag", path, "bag file")->required();
  app.add_option("args", ro.args, "--replace: launch-file arguments name:=value (pass those of the recorded run)");
  auto* by_actor = app.add_option("--actor", actor, "the actor whose recorded inputs are re-driven");
  app.add_option("--core", core, "registered replayable core (default: the actor's name)");
  app.add_option("--policy", policy, "passed to the core as option 'policy'");
  app.add_option("--option", options, "K=V passed to the core; repeatable");
  app.add_flag("--step", step, "interactive stepper");
  auto* by_replace = app.add_option("--replace", ro.replace,
                                    "run the recorded graph live with these actors replaced by players of "
                                    "what they sent (comma list), and compare every actor's outputs")
                         ->delimiter(',')
                         ->allow_extra_args(false);  // `--replace A k:=v`: k:=v is an argument
  by_actor->excludes(by_replace);
  app.add_option("--launch", ro.launch_file, "--replace: this launch file (default: the text in the bag)");
  app.add_option("--rate", ro.rate, "--replace: speed factor of the players (0: as fast as their inputs come)")
      ->check(CLI::NonNegativeNumber);
  bool no_gate = false;
  app.add_flag("--no-gate", no_gate,
               "--replace: pace the players by the stamps only (their outputs may overtake their causes)");
  app.add_option("--gate-timeout-ms", ro.gate_timeout_ms,
                 "--replace: a recorded message waits this long for the live input that caused it")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--linger", ro.linger_s, "--replace: seconds between the players' end and the graph's stop");
  app.add_option("--timeout", ro.timeout_s,
                 "--replace: stop the graph after this many seconds (0: bag duration / rate + 30)");
  app.add_option("--ignore", ro.ignore_fields,
                 "--replace: payload fields left out of the comparison (e.g. start_us,end_us)")
      ->delimiter(',')
      ->allow_extra_args(false);
  app.add_option("--gfdit", ro.gfdit_exe, "--replace: the gfdit executable that runs the nodes");
  app.add_option("--keep", ro.work_dir,
                 "--replace: keep the flattened launch file and the replay's bag in this folder");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }
  if (!ro.replace.empty()) {
    ro.bag = path;
    ro.gate = !no_gate;
    return replay_replace(ro);
  }
  if (actor.empty())
    return fail("pass --actor A (re-drive its core) or --replace A,B (a live graph around recordings)");
  if (!ro.args.empty())
    return fail("unexpected arguments (launch-file arguments go with --replace): " + ro.args.front());
  nlohmann::json opts = nlohmann::json::object();
  if (!policy.empty()) opts["policy"] = policy;
  for (const auto& o : options) {
    const auto eq = o.find('=');
    if (eq == std::string::npos) return fail("--option expects K=V, got '" + o + "'");
    opts[o.substr(0, eq)] = o.substr(eq + 1);
  }
  if (core.empty()) core = actor;
  auto r = bag::reader::open(path);
  if (!r) return fail(r.err().what);
  auto params = recorded_parameters(**r, actor);
  if (!params) return fail(params.err().what);
  replay_params p{actor, &(*r)->head(), opts, std::move(*params)};
  auto c = replayable_core_registry::global().make(core, p);
  if (!c) return fail(c.err().what);
  auto script = load_script(**r, actor, **c);
  if (!script) return fail(script.err().what);
  if (script->inputs.empty()) return fail("the bag holds no input of actor '" + actor + "'");
  replay_session s(std::move(*script), std::move(*c));
  if (step) return stepper(s);
  const auto& o = s.finish();
  if (o.first) {
    std::printf("%s\n", o.first->to_json().dump(2).c_str());
    return 1;
  }
  std::printf("identical (%llu messages)\n", static_cast<unsigned long long>(o.outputs));
  std::fprintf(stderr, "%llu inputs re-driven\n", static_cast<unsigned long long>(o.inputs));
  return 0;
}

}  // namespace gfdit
