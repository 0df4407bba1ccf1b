// The DiT on the CPU: configs, weights and the safetensors loader (round trip, hostile files),
// determinism, the attention against the fp64 reference, and bitwise layout invariance across
// real worker processes over the host collectives.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "kernels/attention/attention.hpp"
#include "kernels/collectives/file_rendezvous.hpp"
#include "kernels/dit/config.hpp"
#include "kernels/dit/forward.hpp"
#include "kernels/dit/model.hpp"
#include "kernels/dit/numerics.hpp"
#include "kernels/dit/sampler.hpp"
#include "tests/kernels/dit/spawn.hpp"

namespace gfdit::dit {
namespace {

namespace fs = std::filesystem;

fs::path temp_file(const std::string& name) {
  return fs::temp_directory_path() / ("gfdit-dit-" + std::to_string(::getpid()) + "-" + name);
}

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

request tiny_request(const model_config& c, std::uint64_t seed, sampler_kind s = sampler_kind::flow_euler) {
  request r;
  r.seed = seed;
  r.steps = 2;
  r.guidance = 3.0f;
  r.sampler = s;
  r.class_label = 1;
  if (c.cond == conditioning::text) r.text = seeded_text(c, seed + 1);
  return r;
}

std::vector<float> run_local(const model& m, const request& r) {
  auto x = initial_latent(m.config(), r, 1, 0);
  auto ok = denoise(m, r, 0, r.steps, sp_group{}, x);
  EXPECT_TRUE(ok.ok()) << (ok ? "" : ok.err().what);
  return x;
}

// --- configs -----------------------------------------------------------------------------

TEST(DitConfig, StockConfigsHaveThePublishedSizes) {
  for (const auto& n : stock_config_names()) {
    auto c = stock_config(n);
    ASSERT_TRUE(c.ok()) << n << ": " << c.err().what;
  }
  auto xl = *stock_config("dit-xl-2-256");
  EXPECT_EQ(xl.hidden, 1152);
  EXPECT_EQ(xl.depth, 28);
  EXPECT_EQ(xl.heads, 16);
  EXPECT_EQ(xl.image_tokens(), 256);
  EXPECT_EQ(stock_config("dit-xl-2-512")->image_tokens(), 1024);
  auto flux = *stock_config("mmdit-12b-standin");
  EXPECT_EQ(flux.hidden, 3072);
  EXPECT_EQ(flux.heads, 24);
  EXPECT_EQ(flux.image_tokens(), 4096);
  EXPECT_EQ(flux.seq_tokens(), 4096 + 512);
  auto wan = *stock_config("video-dit-5b-standin");
  EXPECT_EQ(wan.depth, 30);
  EXPECT_TRUE(wan.video());
  EXPECT_EQ(wan.image_tokens(), 13 * 15 * 26);  // 480p x 49 frames
  auto wan720 = with_video_shape(wan, 1280, 704, 81);
  ASSERT_TRUE(wan720.ok());
  EXPECT_EQ(wan720->image_tokens(), 21 * 22 * 40);
  EXPECT_EQ(stock_config("nope").err().code, errc::not_found);
}

TEST(DitConfig, BadConfigsAreClearErrors) {
  auto c = *stock_config("tiny-dit");
  c.heads = 3;  // does not divide 256
  auto v = validate(c);
  ASSERT_FALSE(v.ok());
  EXPECT_NE(v.err().what.find("heads"), std::string::npos);
  c = *stock_config("tiny-dit");
  c.height = 15;  // patch 2 does not divide it
  EXPECT_FALSE(validate(c).ok());
  c = *stock_config("tiny-mmdit");
  c.text_tokens = 0;
  EXPECT_FALSE(validate(c).ok());
  EXPECT_EQ(config_from_json("{not json").err().code, errc::decode_failed);
  EXPECT_EQ(config_from_json(R"({"name":"x"})").err().code, errc::decode_failed);
  auto back = config_from_json(to_json(*stock_config("tiny-mmdit")));
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(to_json(*back), to_json(*stock_config("tiny-mmdit")));
}

TEST(DitConfig, UlyssesDegreeThatDoesNotDivideTheHeadsIsAnError) {
  const auto dir = temp_file("solo");
  coll::file_rendezvous rv(dir, 0, 1);
  auto w = coll::World::create(rv, {});
  ASSERT_TRUE(w.ok()) << w.err().what;
  const std::int32_t three[] = {0, 1, 2};
  auto g = coll::Group::make(three, 1, 0, 0, 3);  // tiny-dit has 4 heads
  ASSERT_TRUE(g.ok());
  auto m = model::generate(*stock_config("tiny-dit"), 1);
  ASSERT_TRUE(m.ok());
  auto r = tiny_request(m->config(), 1);
  auto x = initial_latent(m->config(), r, 3, 0);
  auto st = denoise(*m, r, 0, 1, sp_group{w->get(), *g}, x);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.err().code, errc::invalid_argument);
  EXPECT_NE(st.err().what.find("does not divide the head count"), std::string::npos) << st.err().what;
  // CFG-parallel needs two equal halves, and a pair that holds this rank.
  const std::int32_t one[] = {0};
  auto odd = form_layout(**w, one, true, 9);
  ASSERT_FALSE(odd.ok());
  EXPECT_EQ(odd.err().code, errc::invalid_argument);
  auto solo = form_layout(**w, one, false, 9);
  ASSERT_TRUE(solo.ok());
  sp_group bad = solo->sp;
  bad.cfg_parallel = true;  // no pair formed
  auto x1 = initial_latent(m->config(), r, 1, 0);
  EXPECT_EQ(denoise(*m, r, 0, 1, bad, x1).err().code, errc::invalid_argument);
  fs::remove_all(dir);
}

// --- weights -----------------------------------------------------------------------------

TEST(DitWeights, GeneratorIsASeededPureFunction) {
  const auto c = *stock_config("tiny-dit");
  auto a = model::generate(c, 11), b = model::generate(c, 11), d = model::generate(c, 12);
  ASSERT_TRUE(a.ok() && b.ok() && d.ok());
  EXPECT_EQ(a->tensors(), b->tensors());
  EXPECT_NE(a->tensors().at("blocks.0.qkv.weight"), d->tensors().at("blocks.0.qkv.weight"));
  EXPECT_EQ(static_cast<std::int64_t>(a->tensors().size()), static_cast<std::int64_t>(weight_specs(c).size()));
  EXPECT_GT(parameter_count(*stock_config("dit-xl-2-256")), 600'000'000);  // DiT-XL/2 is 675M
}

TEST(DitWeights, SafetensorsRoundTripIsBitExact) {
  for (const char* name : {"tiny-dit", "tiny-mmdit"}) {
    const auto c = *stock_config(name);
    auto m = model::generate(c, 3);
    ASSERT_TRUE(m.ok());
    const auto path = temp_file(std::string(name) + ".safetensors");
    ASSERT_TRUE(m->save(path).ok());
    auto back = model::load(path);
    ASSERT_TRUE(back.ok()) << back.err().what;
    EXPECT_EQ(to_json(back->config()), to_json(c));
    EXPECT_EQ(back->tensors(), m->tensors());
    auto with_expect = model::load(path, &c);
    EXPECT_TRUE(with_expect.ok());
    const auto r = tiny_request(c, 9);
    EXPECT_TRUE(same_bits(run_local(*m, r), run_local(*back, r)));
    fs::remove(path);
  }
}

// Rewrites a saved file's JSON header through `edit` (the data stays as it was).
void rewrite_header(const fs::path& p, const std::function<void(nlohmann::json&)>& edit) {
  std::ifstream f(p, std::ios::binary);
  std::string all((std::istreambuf_iterator<char>(f)), {});
  std::uint64_t n = 0;
  for (int i = 0; i < 8; ++i) n |= static_cast<std::uint64_t>(static_cast<unsigned char>(all[i])) << (8 * i);
  auto j = nlohmann::json::parse(all.substr(8, n));
  edit(j);
  std::string h = j.dump();
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>(h.size() >> (8 * i));
  out += h + all.substr(8 + n);
  std::ofstream(p, std::ios::binary | std::ios::trunc) << out;
}

TEST(DitWeights, BadWeightFilesGiveClearErrors) {
  const auto c = *stock_config("tiny-dit");
  auto m = model::generate(c, 3);
  ASSERT_TRUE(m.ok());
  const auto path = temp_file("bad.safetensors");
  auto expect_error = [&](errc code, const std::string& needle) {
    auto r = model::load(path);
    ASSERT_FALSE(r.ok()) << "loaded a bad file (" << needle << ")";
    EXPECT_EQ(r.err().code, code) << r.err().what;
    EXPECT_NE(r.err().what.find(needle), std::string::npos) << r.err().what;
  };

  EXPECT_EQ(model::load(temp_file("missing")).err().code, errc::not_found);

  ASSERT_TRUE(m->save(path).ok());
  fs::resize_file(path, fs::file_size(path) - 100);
  expect_error(errc::decode_failed, "truncated");

  std::ofstream(path, std::ios::binary | std::ios::trunc) << "abc";
  expect_error(errc::decode_failed, "truncated");

  {  // header length claims more than the limit
    std::string huge(8, '\0');
    huge[4] = 1;  // 2^32
    std::ofstream(path, std::ios::binary | std::ios::trunc) << huge << "{}";
    expect_error(errc::too_large, "exceeds the limit");
  }
  {
    std::string junk(8, '\0');
    junk[0] = 5;
    std::ofstream(path, std::ios::binary | std::ios::trunc) << junk << "{oops";
    expect_error(errc::decode_failed, "not JSON");
  }

  ASSERT_TRUE(m->save(path).ok());
  rewrite_header(path, [](nlohmann::json& j) { j["blocks.1.fc1.weight"]["dtype"] = "F32"; });
  expect_error(errc::decode_failed, "blocks.1.fc1.weight: data_offsets");  // F32 needs twice the bytes

  ASSERT_TRUE(m->save(path).ok());
  rewrite_header(path, [](nlohmann::json& j) { j["blocks.1.fc1.weight"]["dtype"] = "I16"; });
  expect_error(errc::invalid_argument, "blocks.1.fc1.weight: dtype I16");

  ASSERT_TRUE(m->save(path).ok());
  rewrite_header(path, [](nlohmann::json& j) { j["blocks.0.qkv.weight"]["shape"] = {256, 768}; });
  expect_error(errc::invalid_argument, "wrong shape");

  ASSERT_TRUE(m->save(path).ok());
  rewrite_header(path, [](nlohmann::json& j) { j.erase("final.linear.bias"); });
  expect_error(errc::invalid_argument, "missing tensor final.linear.bias");

  ASSERT_TRUE(m->save(path).ok());
  rewrite_header(path, [](nlohmann::json& j) { j["x_embed.bias"]["data_offsets"] = {0, 7}; });
  expect_error(errc::decode_failed, "data_offsets");

  ASSERT_TRUE(m->save(path).ok());
  rewrite_header(path, [](nlohmann::json& j) {
    auto cfg = nlohmann::json::parse(j["__metadata__"]["gfdit.config"].get<std::string>());
    cfg["heads"] = 3;
    j["__metadata__"]["gfdit.config"] = cfg.dump();
  });
  expect_error(errc::invalid_argument, "heads");

  ASSERT_TRUE(m->save(path).ok());
  auto other = *stock_config("tiny-mmdit");
  auto mismatch = model::load(path, &other);
  ASSERT_FALSE(mismatch.ok());
  EXPECT_NE(mismatch.err().what.find("differs from the expected"), std::string::npos);
  fs::remove(path);
}

// --- numerics ----------------------------------------------------------------------------

TEST(DitNumerics, CpuAttentionAgreesWithTheFp64Reference) {
  const int n = 40, heads = 2, d = 64;
  std::vector<std::uint16_t> qb(n * heads * d), kb(qb.size()), vb(qb.size());
  std::vector<float> q(qb.size()), k(qb.size()), v(qb.size()), o(qb.size());
  for (std::size_t i = 0; i < qb.size(); ++i) {
    qb[i] = to_bf16(counter_normal(1, i));
    kb[i] = to_bf16(counter_normal(2, i));
    vb[i] = to_bf16(counter_normal(3, i));
    q[i] = from_bf16(qb[i]);
    k[i] = from_bf16(kb[i]);
    v[i] = from_bf16(vb[i]);
  }
  attention_cpu(q.data(), k.data(), v.data(), o.data(), n, heads, d);
  // The reference wants [batch, heads, seq, dim]; ours is [seq, heads, dim].
  auto to_bhsd = [&](const std::vector<std::uint16_t>& x) {
    std::vector<std::uint16_t> y(x.size());
    for (int s = 0; s < n; ++s)
      for (int h = 0; h < heads; ++h)
        for (int e = 0; e < d; ++e) y[(h * n + s) * d + e] = x[(s * heads + h) * d + e];
    return y;
  };
  attention::problem p;
  p.heads = heads;
  p.seqlen = n;
  p.head_dim = d;
  std::vector<float> ref(qb.size());
  auto st =
      attention::reference_forward(p, to_bhsd(qb).data(), to_bhsd(kb).data(), to_bhsd(vb).data(), ref.data(), nullptr);
  ASSERT_TRUE(st.ok()) << st.err().what;
  double worst = 0;
  for (int s = 0; s < n; ++s)
    for (int h = 0; h < heads; ++h)
      for (int e = 0; e < d; ++e)
        worst = std::max(worst, std::abs(static_cast<double>(o[(s * heads + h) * d + e]) - ref[(h * n + s) * d + e]));
  EXPECT_LT(worst, 1.0 / 128);  // one bf16 rounding of an output of order one
}

TEST(DitNumerics, PatchifyAndUnpatchifyAreInverse) {
  for (const char* name : {"tiny-dit", "tiny-mmdit"}) {
    const auto c = *stock_config(name);
    std::vector<float> lat(static_cast<std::size_t>(c.latent_channels * c.frames * c.height * c.width));
    for (std::size_t i = 0; i < lat.size(); ++i) lat[i] = static_cast<float>(i);
    EXPECT_TRUE(same_bits(unpatchify(c, patchify(c, lat)), lat));
  }
}

TEST(DitNumerics, NoiseShardsTileTheFullNoise) {
  const auto c = *stock_config("tiny-mmdit");
  const auto r = tiny_request(c, 4);
  const auto full = initial_latent(c, r, 1, 0);
  for (int d : {2, 3, 4}) {
    std::vector<float> cat;
    for (int i = 0; i < d; ++i) {
      auto s = initial_latent(c, r, d, i);
      cat.insert(cat.end(), s.begin(), s.end());
    }
    EXPECT_TRUE(same_bits(cat, full)) << "degree " << d;
  }
  double mean = 0, var = 0;
  for (float x : full) mean += x;
  mean /= full.size();
  for (float x : full) var += (x - mean) * (x - mean);
  var /= full.size();
  EXPECT_NEAR(mean, 0.0, 0.1);
  EXPECT_NEAR(var, 1.0, 0.15);
}

TEST(DitSampler, SameSeedTwiceGivesTheSameBitsAndAnotherSeedDoesNot) {
  for (const char* name : {"tiny-dit", "tiny-mmdit"})
    for (auto s : {sampler_kind::flow_euler, sampler_kind::ddim}) {
      auto m = model::generate(*stock_config(name), 5);
      ASSERT_TRUE(m.ok());
      const auto a = run_local(*m, tiny_request(m->config(), 21, s));
      const auto b = run_local(*m, tiny_request(m->config(), 21, s));
      const auto other = run_local(*m, tiny_request(m->config(), 22, s));
      EXPECT_TRUE(same_bits(a, b)) << name;
      EXPECT_FALSE(same_bits(a, other)) << name;
      for (float x : a) ASSERT_TRUE(std::isfinite(x)) << name;
    }
}

TEST(DitSampler, ChunkedStepsEqualOneRunAndGuidanceMatters) {
  auto m = model::generate(*stock_config("tiny-dit"), 5);
  ASSERT_TRUE(m.ok());
  auto r = tiny_request(m->config(), 8);
  r.steps = 3;
  const auto whole = run_local(*m, r);
  auto x = initial_latent(m->config(), r, 1, 0);
  for (int i = 0; i < r.steps; ++i) ASSERT_TRUE(denoise(*m, r, i, i + 1, sp_group{}, x).ok());
  EXPECT_TRUE(same_bits(whole, x));
  r.guidance = 1.0f;
  EXPECT_FALSE(same_bits(whole, run_local(*m, r)));
  r.class_label = 99;
  EXPECT_FALSE(validate(m->config(), r).ok());
}

TEST(DitSampler, ABatchOfRequestsGivesEachRequestItsOwnBits) {
  for (const char* name : {"tiny-dit", "tiny-mmdit"}) {
    auto m = model::generate(*stock_config(name), 5);
    ASSERT_TRUE(m.ok());
    const model_config& c = m->config();
    std::vector<request> rs;
    for (int k = 0; k < 3; ++k) {
      rs.push_back(tiny_request(c, 40 + k, k == 2 ? sampler_kind::ddim : sampler_kind::flow_euler));
      rs.back().steps = 3;
      if (k == 1) rs.back().guidance = 1.0f;  // no CFG pass for this one
    }
    std::vector<std::vector<float>> batch;
    for (const auto& r : rs) batch.push_back(initial_latent(c, r, 1, 0));
    auto fwd = [&](const forward_input& in, const sp_group& g) { return forward_cpu(*m, in, g); };
    ASSERT_TRUE(denoise_batch(fwd, c, rs, 0, 3, batch).ok());
    for (std::size_t k = 0; k < rs.size(); ++k)
      EXPECT_TRUE(same_bits(batch[k], run_local(*m, rs[k]))) << name << " " << k;
    rs[1].steps = 4;
    EXPECT_FALSE(denoise_batch(fwd, c, rs, 0, 3, batch).ok()) << "requests of different step counts";
    batch.pop_back();
    rs[1].steps = 3;
    EXPECT_FALSE(denoise_batch(fwd, c, rs, 0, 3, batch).ok()) << "a latent short";
  }
}

// --- layout invariance across real processes ----------------------------------------------

void expect_all_passed(const std::vector<testing::exit_status>& st) {
  for (std::size_t r = 0; r < st.size(); ++r)
    EXPECT_TRUE(st[r].exited && st[r].code == 0)
        << "rank " << r << ": exit code " << st[r].code << ", signal " << st[r].signal;
}

TEST(DitUlysses, ClassModelFlowFinalLatentsBitwiseEqualAcrossDegreesRegroupingAndCfgParallel) {
  expect_all_passed(testing::run_workers("invariance", 4, {"tiny-dit", "flow"}, std::chrono::seconds(240)));
}

TEST(DitUlysses, TextVideoModelDdimFinalLatentsBitwiseEqualAcrossDegreesRegroupingAndCfgParallel) {
  expect_all_passed(testing::run_workers("invariance", 4, {"tiny-mmdit", "ddim"}, std::chrono::seconds(240)));
}

}  // namespace
}  // namespace gfdit::dit
