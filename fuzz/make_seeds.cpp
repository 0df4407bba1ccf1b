// Writes the seed corpora (fuzz/corpus/<target>/) from the project's own encoders and writers,
// plus a few malformed variants of each. Run once by hand when a format changes:
//   build-fuzz/fuzz/fuzz_make_seeds fuzz/corpus
// Deterministic: the same bytes every run (fixed stamps, host and ids).
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

#include "bag/bag_writer.hpp"
#include "kernels/dit/safetensors.hpp"
#include "messages/catalog.hpp"
#include "messages/codec.hpp"
#include "messages/envelope.hpp"
#include "messages/membership.hpp"
#include "messages/serving.hpp"

namespace fs = std::filesystem;
using namespace gfdit;

namespace {

fs::path root;

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), {}};
}

void put(const std::string& target, const std::string& name, const std::string& bytes) {
  fs::create_directories(root / target);
  std::ofstream(root / target / name, std::ios::binary).write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

msg::generate_request request() {
  msg::generate_request r;
  r.request_id = 42;
  r.model = "image-dit-20b-standin";
  r.width = r.height = 1024;
  r.steps = 20;
  r.guidance = 4.5;
  r.seed = 7;
  r.slo_ms = 5000;
  r.class_name = "1024";
  return r;
}

msg::task_assign task() {
  msg::task_assign t;
  t.task_id = 3;
  t.request_id = 42;
  t.model = "image-dit-20b-standin";
  t.tokens = 4096;
  t.stage = "denoise";
  t.step_begin = 0;
  t.step_end = 5;
  t.group_id = 0x1234;
  t.epoch = 2;
  t.members = {0, 1, 2, 3};
  t.output_layout = "sharded";
  t.request = request();
  return t;
}

msg::group_view view() {
  msg::group_view g;
  g.group_id = 0x1234;
  g.epoch = 2;
  g.members = {0, 1};
  g.reason = "formed";
  return g;
}

template <class T>
envelope wrap(const T& m, std::uint64_t seq, route kind, const std::string& to) {
  envelope e;
  e.type_id = type_id_of<T>;
  e.version = T::type_version;
  e.seq = seq;
  e.sender = seq % 2 ? "scheduler" : "admission";
  e.destination = to;
  e.kind = kind;
  e.time = {seq, 1'700'000'000'000'000'000 + static_cast<std::int64_t>(seq) * 1000};
  e.trace_id = seq * 7919;
  e.payload = encode(m);
  return e;
}

void messages() {
  // The first byte picks the entry in fuzz_message_decode.cpp's table.
  const std::string plain = encode(request());
  put("fuzz_message_decode", "check-request", std::string(1, 0) + plain);
  put("fuzz_message_decode", "unpack-task-assign", std::string(1, 2) + encode(task()));
  put("fuzz_message_decode", "generate-request", std::string(1, 4) + plain);
  put("fuzz_message_decode", "task-assign", std::string(1, 7) + encode(task()));
  msg::task_done d;
  d.task_id = 3;
  d.stage = "decode";
  d.ok = true;
  d.result_hash = 0xfeedface;
  put("fuzz_message_decode", "task-done", std::string(1, 8) + encode(d));
  msg::worker_hello h{3, "node-1", "cpu:0", "sim"};
  put("fuzz_message_decode", "worker-hello", std::string(1, 13) + encode(h));
  put("fuzz_message_decode", "group-view", std::string(1, 17) + encode(view()));
  // Malformed: cut short, a field of the wrong type, a declared 2 GiB string, deep nesting.
  put("fuzz_message_decode", "bad-truncated", std::string(1, 4) + plain.substr(0, plain.size() / 2));
  put("fuzz_message_decode", "bad-wrong-type", std::string(1, 4) + "\x81\xa5model\x2a");
  put("fuzz_message_decode", "bad-huge-string",
      std::string(1, 0) + std::string("\xdb\x80\x00\x00\x00"
                                      "abc",
                                      8));
  put("fuzz_message_decode", "bad-deep", std::string(1, 1) + std::string(100, '\x91') + std::string(1, '\0'));
}

void envelopes() {
  const auto a = encode_envelope(wrap(request(), 1, route::direct, "admission"));
  put("fuzz_envelope", "request-direct", a);
  put("fuzz_envelope", "task-assign-direct", encode_envelope(wrap(task(), 2, route::direct, "worker-0")));
  put("fuzz_envelope", "group-view-topic", encode_envelope(wrap(view(), 3, route::topic, "groups")));
  auto unknown = wrap(view(), 4, route::reply, "scheduler");
  unknown.type_id = 12345;  // not in the catalog: rendered as plain msgpack
  unknown.correlation = 9;
  put("fuzz_envelope", "unknown-type-reply", encode_envelope(unknown));
  auto mismatch = wrap(view(), 5, route::failure, "client");
  mismatch.type_id = type_id_of<msg::generate_request>;  // payload of another type
  put("fuzz_envelope", "payload-of-another-type", encode_envelope(mismatch));
  put("fuzz_envelope", "bad-truncated", a.substr(0, a.size() - 7));
  put("fuzz_envelope", "bad-not-a-map", "\x93\x01\x02\x03");
}

void bags(const fs::path& tmp) {
  bag::header h;
  h.launch = "graph: seed\n";
  h.host = "seed";
  h.start_ns = 1'700'000'000'000'000'000;
  for (const char* name : {"serving.generate_request", "membership.group_view"})
    if (const auto* e = catalog::global().find(std::string_view(name)))
      h.catalog.push_back({e->name, e->id, e->version, e->schema});
  const auto path = (tmp / "seed.bag").string();
  {
    auto w = bag::writer::create(path, h, {.chunk_bytes = 256});
    if (!w) throw std::runtime_error(w.err().what);
    for (std::uint64_t i = 1; i <= 8; ++i) {
      auto r = i % 3 == 0 ? (*w)->write(wrap(view(), i, route::topic, "groups"))
                          : (*w)->write(wrap(request(), i, route::direct, "admission"));
      if (!r) throw std::runtime_error(r.err().what);
    }
    if (auto r = (*w)->close(); !r) throw std::runtime_error(r.err().what);
  }
  const std::string bagfile = slurp(path);
  // The first byte: odd lets the harness rewrite the CRCs after mutation.
  put("fuzz_bag_reader", "bag-fix-crcs", "\x01" + bagfile);
  put("fuzz_bag_reader", "bag-as-is", std::string(1, 0) + bagfile);
  put("fuzz_bag_reader", "bad-cut-mid-chunk", std::string(1, 0) + bagfile.substr(0, bagfile.size() * 2 / 3));
  std::string flipped = bagfile;
  flipped[flipped.size() / 2] ^= 0x40;
  put("fuzz_bag_reader", "bad-flipped-byte", std::string(1, 0) + flipped);
  put("fuzz_bag_reader", "bad-header-only", std::string(1, 0) + bagfile.substr(0, 20));
}

void safetensors(const fs::path& tmp) {
  dit::st_file f;
  f.metadata["format"] = "pt";
  f.tensors["w"] = {"F32", {2, 3}, {1, -2, 3.5f, 0, 1e-3f, 65504}};
  f.tensors["b"] = {"F32", {3}, {0.5f, 0.25f, -0.125f}};
  f.tensors["scalar"] = {"F32", {}, {7}};
  for (const char* dtype : {"F32", "F16", "BF16"}) {
    const auto p = tmp / (std::string(dtype) + ".safetensors");
    if (auto r = dit::write_safetensors(p, f, dtype); !r) throw std::runtime_error(r.err().what);
    put("fuzz_safetensors", std::string("small-") + dtype, slurp(p));
  }
  const std::string f32 = slurp(tmp / "F32.safetensors");
  put("fuzz_safetensors", "bad-truncated", f32.substr(0, f32.size() - 5));
  put("fuzz_safetensors", "bad-header-length", std::string("\xff\xff\xff\xff\xff\xff\xff\x7f", 8) + f32.substr(8));
}

void launch_files(const fs::path& src) {
  for (const auto& e : fs::directory_iterator(src / "launch/graphs"))
    if (e.path().extension() == ".yaml") put("fuzz_launch_file", e.path().filename().string(), slurp(e.path()));
  put("fuzz_launch_file", "args-and-substitution.yaml",
      "#!workers:=3 model:=m\n"
      "graph: subst\n"
      "args: {workers: 2, model: dit, dir: $(dirname)}\n"
      "parameters: {model: $(arg model), home: \"$(env HOME)\"}\n"
      "processes:\n"
      "  - name: w\n"
      "    replicas: $(arg workers)\n"
      "    restart: {policy: on_failure, max: 2, backoff_ms: 10}\n"
      "    env: {RANK: \"$(index)\"}\n"
      "    actors:\n"
      "      - {type: example.ponger, name: p$(index), params: {n: [1, 2.5, true, x]}, remaps: {ping: "
      "ping-$(index)}}\n");
  put("fuzz_launch_file", "include-self.yaml", "graph: loop\ninclude: [gfdit-fuzz-x.yaml]\nprocesses: []\n");
  put("fuzz_launch_file", "bad-alias-bomb.yaml",
      "graph: bomb\na: &a [x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a]\n"
      "parameters: {c: [*b, *b, *b, *b, *b, *b, *b, *b]}\n");
  put("fuzz_launch_file", "bad-unterminated.yaml", "graph: x\nargs: {a: 1}\nparameters: {p: $(arg a}\n");
}

void http_bodies() {
  put("fuzz_http_request", "full.json",
      R"({"model": "image-dit-20b-standin", "size": "1024x1024", "steps": 20, "guidance": 4.0, "seed": 7,)"
      R"( "frames": 1, "slo_ms": 5000, "slo_multiple": 2.0, "priority": 0, "class": "1024", "n": 1,)"
      R"( "response_format": "b64_json", "user": "u"})");
  put("fuzz_http_request", "width-height.json", R"({"model": "dit-s-2", "width": 256, "height": 512})");
  put("fuzz_http_request", "unicode.json",
      R"({"model": "mod\u00e8le-\u00e9t\u00e9", "size": "512x512", "class": "\u732b"})");
  put("fuzz_http_request", "bad-unknown-field.json", R"({"model": "m", "size": "1x1", "stepz": 3})");
  put("fuzz_http_request", "bad-types.json", R"({"model": 3, "size": [1024, 1024], "n": 2})");
  put("fuzz_http_request", "bad-size.json", R"({"model": "m", "size": "1024x"})");
  put("fuzz_http_request", "bad-deep.json", std::string(40, '[') + std::string(40, ']'));
  put("fuzz_http_request", "bad-not-json.json", R"({"model": "m",)");
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s CORPUS_DIR (e.g. fuzz/corpus)\n", argv[0]);
    return 2;
  }
  root = argv[1];
  const fs::path src = fs::path(__FILE__).parent_path().parent_path();
  const fs::path tmp = fs::temp_directory_path() / "gfdit-fuzz-seeds";
  fs::create_directories(tmp);
  try {
    messages();
    envelopes();
    bags(tmp);
    safetensors(tmp);
    launch_files(src);
    http_bodies();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "make_seeds: %s\n", e.what());
    return 1;
  }
  fs::remove_all(tmp);
  return 0;
}
