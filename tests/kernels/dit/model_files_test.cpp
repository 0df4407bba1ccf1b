// Model files from outside: safetensors in every float dtype and hostile ones, IDX data sets
// (gzip'd) and hostile ones, PNG files, model directories and prompts.
#include <gtest/gtest.h>
#include <zlib.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>

#include <nlohmann/json.hpp>

#include "kernels/dit/idx.hpp"
#include "kernels/dit/model.hpp"
#include "kernels/dit/model_card.hpp"
#include "kernels/dit/numerics.hpp"
#include "kernels/dit/png.hpp"
#include "kernels/dit/safetensors.hpp"

namespace fs = std::filesystem;
using namespace gfdit;
using namespace gfdit::dit;

namespace {

fs::path temp_path(const std::string& name) {
  const fs::path dir = fs::temp_directory_path() / ("gfdit-model-files-" + std::to_string(::getpid()));
  fs::create_directories(dir);
  return dir / name;
}

std::vector<std::uint8_t> bytes_of(const std::string& s) { return {s.begin(), s.end()}; }

void write_bytes(const fs::path& p, const std::vector<std::uint8_t>& b) {
  std::ofstream(p, std::ios::binary | std::ios::trunc)
      .write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
}

std::vector<std::uint8_t> gzip(const std::vector<std::uint8_t>& raw) {
  z_stream zs{};
  deflateInit2(&zs, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY);  // +16: gzip wrapper
  std::vector<std::uint8_t> out(deflateBound(&zs, static_cast<uLong>(raw.size())) + 32);
  zs.next_in = const_cast<Bytef*>(raw.data());
  zs.avail_in = static_cast<uInt>(raw.size());
  zs.next_out = out.data();
  zs.avail_out = static_cast<uInt>(out.size());
  EXPECT_EQ(deflate(&zs, Z_FINISH), Z_STREAM_END);
  out.resize(zs.total_out);
  deflateEnd(&zs);
  return out;
}

std::vector<std::uint8_t> idx_bytes(std::uint8_t type, const std::vector<std::uint32_t>& dims, std::size_t payload) {
  std::vector<std::uint8_t> b = {0, 0, type, static_cast<std::uint8_t>(dims.size())};
  for (auto d : dims)
    for (int s = 24; s >= 0; s -= 8) b.push_back(static_cast<std::uint8_t>(d >> s));
  for (std::size_t i = 0; i < payload; ++i) b.push_back(static_cast<std::uint8_t>(i * 7));
  return b;
}

const fs::path source_dir = GFDIT_SOURCE_DIR;

}  // namespace

// --- safetensors ------------------------------------------------------------------------

TEST(Safetensors, WeightsLoadFromF32AndF16AsFromBf16) {
  auto c = *stock_config("tiny-dit");
  auto m = model::generate(c, 11);
  ASSERT_TRUE(m.ok());
  const auto bf16 = temp_path("w-bf16.safetensors");
  ASSERT_TRUE(m->save(bf16).ok());
  auto file = read_safetensors(bf16);
  ASSERT_TRUE(file.ok()) << file.err().what;
  EXPECT_EQ(file->metadata.at("gfdit.config"), to_json(c));
  for (const std::string dtype : {"F32", "F16"}) {
    const auto p = temp_path("w-" + dtype + ".safetensors");
    ASSERT_TRUE(write_safetensors(p, *file, dtype).ok());
    auto back = read_safetensors(p);
    ASSERT_TRUE(back.ok()) << back.err().what;
    EXPECT_EQ(back->tensors.at("x_embed.weight").dtype, dtype);
    auto loaded = model::load(p);
    ASSERT_TRUE(loaded.ok()) << dtype << ": " << loaded.err().what;
    if (dtype == "F32") {
      EXPECT_EQ(loaded->tensors(), m->tensors());  // bf16 values are exact in f32
    } else {  // f16 keeps bf16's 8 significant bits except for tiny values (subnormal in f16)
      std::size_t differ = 0, total = 0;
      for (const auto& [name, v] : m->tensors())
        for (std::size_t i = 0; i < v.size(); ++i, ++total) {
          const float a = from_bf16(v[i]), b = from_bf16(loaded->tensors().at(name)[i]);
          EXPECT_LE(std::fabs(a - b), 6e-8f + 1e-3f * std::fabs(a)) << name << "[" << i << "]";
          differ += a != b;
        }
      EXPECT_LT(differ, total / 100) << "more than 1% of the weights moved through f16";
    }
  }
}

TEST(Safetensors, HostileFilesAreRefusedNamingTheTensor) {
  auto c = *stock_config("tiny-dit");
  auto m = model::generate(c, 3);
  ASSERT_TRUE(m.ok());
  auto good = read_safetensors([&] {
    const auto p = temp_path("good.safetensors");
    EXPECT_TRUE(m->save(p).ok());
    return p;
  }());
  ASSERT_TRUE(good.ok());
  const auto path = temp_path("hostile.safetensors");
  auto load_error = [&](const std::function<void(st_file&)>& edit) {
    st_file f = *good;
    edit(f);
    EXPECT_TRUE(write_safetensors(path, f, "BF16").ok());
    auto r = model::load(path);
    return r.ok() ? std::string("loaded") : r.err().what;
  };
  EXPECT_NE(load_error([](st_file& f) {
              f.tensors["extra.weight"] = {"BF16", {2}, {1, 2}};
            }).find("unexpected tensor extra.weight"),
            std::string::npos);
  EXPECT_NE(load_error([](st_file& f) {
              f.tensors["blocks.0.fc2.bias"].values[5] = NAN;
            }).find("blocks.0.fc2.bias: element 5 is not finite"),
            std::string::npos);
  EXPECT_NE(load_error([](st_file& f) { f.tensors["final.ada.weight"].values[0] = INFINITY; }).find("final.ada.weight"),
            std::string::npos);
  EXPECT_NE(load_error([](st_file& f) { f.tensors.erase("t_embed.fc1.bias"); }).find("missing tensor t_embed.fc1.bias"),
            std::string::npos);
  EXPECT_NE(load_error([](st_file& f) {
              f.tensors["x_embed.bias"].shape = {128, 2};
            }).find("x_embed.bias: wrong shape [128, 2]"),
            std::string::npos);

  // Headers that lie about the data.
  auto raw_error = [&](const std::string& header, std::size_t data_bytes) {
    std::vector<std::uint8_t> b(8);
    for (int i = 0; i < 8; ++i) b[i] = static_cast<std::uint8_t>(header.size() >> (8 * i));
    b.insert(b.end(), header.begin(), header.end());
    b.resize(b.size() + data_bytes, 0);
    write_bytes(path, b);
    auto r = read_safetensors(path);
    return r.ok() ? std::string("read") : r.err().what;
  };
  EXPECT_NE(raw_error(R"({"a":{"dtype":"F32","shape":[1000000,1000000],"data_offsets":[0,16]}})", 16)
                .find("claims more bytes"),
            std::string::npos);
  // 3 x 6148914691236517206 wraps to 2 in 64 bits: a shape that lies must not pass as 2 values.
  EXPECT_NE(raw_error(R"({"a":{"dtype":"F32","shape":[3,6148914691236517206],"data_offsets":[0,8]}})", 8)
                .find("claims more bytes"),
            std::string::npos);
  EXPECT_NE(raw_error(R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})", 8).find("truncated: a ends past"),
            std::string::npos);
  EXPECT_NE(raw_error(R"({"a":{"dtype":"F32","shape":[-4],"data_offsets":[0,16]}})", 16).find("negative dimension"),
            std::string::npos);
  EXPECT_NE(raw_error(R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[16,0]}})", 16).find("a: data_offsets"),
            std::string::npos);
  EXPECT_NE(raw_error(R"({"a":{"dtype":"F32","shape":[4]}})", 16).find("a: malformed entry"), std::string::npos);
  // Found by fuzz_safetensors: a dimension past int64 parses as a double, whose conversion was
  // undefined; floats and offsets that are not integers from 0 are refused the same way.
  EXPECT_NE(raw_error(R"({"a":{"dtype":"F32","shape":[77777777777777777777777777,3],"data_offsets":[0,8]}})", 8)
                .find("a: shape holds 7.7"),
            std::string::npos);
  EXPECT_NE(raw_error(R"({"a":{"dtype":"F32","shape":[18446744073709551615],"data_offsets":[0,8]}})", 8)
                .find("a: shape holds 18446744073709551615, not a dimension"),
            std::string::npos);
  EXPECT_NE(raw_error(R"({"a":{"dtype":"F32","shape":[2.5],"data_offsets":[0,8]}})", 8).find("a: shape holds 2.5"),
            std::string::npos);
  EXPECT_NE(raw_error(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,1e300]}})", 8)
                .find("a: data_offsets must be [begin, end]"),
            std::string::npos);
  EXPECT_NE(raw_error(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[-1,8]}})", 8)
                .find("a: data_offsets must be [begin, end]"),
            std::string::npos);
  EXPECT_NE(raw_error(R"({"a":{"dtype":"F32","shape":4,"data_offsets":[0,16]}})", 16).find("a: shape must be an array"),
            std::string::npos);
  EXPECT_NE(raw_error(R"({"a":{"dtype":"Q4","shape":[4],"data_offsets":[0,16]}})", 16).find("a: dtype Q4"),
            std::string::npos);
  EXPECT_NE(raw_error(R"({"__metadata__":{"x":5}})", 0).find("__metadata__.x is not a string"), std::string::npos);
  EXPECT_NE(raw_error(R"([1,2])", 0).find("not a JSON object"), std::string::npos);
  EXPECT_EQ(raw_error(R"({"a":{"dtype":"I32","shape":[2],"data_offsets":[0,8]}})", 8), "read");
}

// --- IDX --------------------------------------------------------------------------------

TEST(Idx, ReadsPlainAndGzipFiles) {
  const auto raw = idx_bytes(0x08, {3, 2, 2}, 12);
  auto a = parse_idx(raw);
  ASSERT_TRUE(a.ok()) << a.err().what;
  EXPECT_EQ(a->dims, (std::vector<std::uint32_t>{3, 2, 2}));
  EXPECT_EQ(a->data[5], 35);
  const auto p = temp_path("x.idx.gz");
  write_bytes(p, gzip(raw));
  auto b = read_idx(p);
  ASSERT_TRUE(b.ok()) << b.err().what;
  EXPECT_EQ(b->data, a->data);
}

TEST(Idx, HostileInputGetsClearErrors) {
  struct row {
    std::string name;
    std::vector<std::uint8_t> bytes;
    errc code;
    std::string needle;
  };
  auto good = idx_bytes(0x08, {4, 3}, 12);
  auto truncated_dims = idx_bytes(0x08, {4, 3}, 0);
  truncated_dims.resize(9);
  const std::vector<row> rows = {
      {"empty", {}, errc::decode_failed, "shorter than its 4-byte magic"},
      {"bad magic", {1, 0, 8, 1, 0, 0, 0, 0}, errc::decode_failed, "two zero bytes"},
      {"float elements", idx_bytes(0x0D, {4}, 16), errc::invalid_argument, "element type code 13"},
      {"rank 0", idx_bytes(0x08, {}, 0), errc::invalid_argument, "rank 0"},
      {"rank 5", idx_bytes(0x08, {1, 1, 1, 1, 1}, 1), errc::invalid_argument, "rank 5"},
      {"dimensions cut short", truncated_dims, errc::decode_failed, "truncated in the dimensions"},
      {"fewer bytes than dims", idx_bytes(0x08, {4, 3}, 11), errc::decode_failed,
       "claim 12 elements, the file holds 11"},
      {"more bytes than dims", idx_bytes(0x08, {4, 3}, 13), errc::decode_failed, "the file holds 13"},
      {"dims overflow 64 bits", idx_bytes(0x08, {0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu}, 4),
       errc::decode_failed, "claim"},
  };
  for (const auto& r : rows) {
    auto a = parse_idx(r.bytes);
    ASSERT_FALSE(a.ok()) << r.name;
    EXPECT_EQ(a.err().code, r.code) << r.name << ": " << a.err().what;
    EXPECT_NE(a.err().what.find(r.needle), std::string::npos) << r.name << ": " << a.err().what;
  }
  // gzip: cut short, a flipped byte, and a bomb that inflates past the limit.
  auto gz = gzip(good);
  auto cut = std::vector<std::uint8_t>(gz.begin(), gz.begin() + static_cast<std::ptrdiff_t>(gz.size() / 2));
  EXPECT_NE(gunzip(cut, 1 << 20).err().what.find("truncated"), std::string::npos);
  auto flipped = gz;
  flipped[12] ^= 0xff;
  auto f = gunzip(flipped, 1 << 20);
  if (f.ok()) {
    EXPECT_NE(*f, good);  // a flip the deflate stream survives must still fail the length check
  } else {
    EXPECT_EQ(f.err().code, errc::decode_failed) << f.err().what;
  }
  const auto bomb = gzip(std::vector<std::uint8_t>(std::size_t{64} << 20, 0));  // 64 MiB of zeros
  EXPECT_LT(bomb.size(), std::size_t{1} << 20);
  auto big = gunzip(bomb, std::size_t{8} << 20);
  ASSERT_FALSE(big.ok());
  EXPECT_EQ(big.err().code, errc::too_large);
  const auto p = temp_path("bomb.gz");
  write_bytes(p, bomb);
  EXPECT_EQ(read_idx(p, std::size_t{8} << 20).err().code, errc::too_large);
  EXPECT_EQ(read_idx(temp_path("absent.gz")).err().code, errc::not_found);
}

TEST(Idx, LabelsAreCheckedAgainstImagesAndClasses) {
  const auto im = temp_path("im.idx"), lb = temp_path("lb.idx");
  write_bytes(im, idx_bytes(0x08, {2, 2, 2}, 8));
  auto labels = idx_bytes(0x08, {2}, 0);
  labels.push_back(1);
  labels.push_back(9);
  write_bytes(lb, labels);
  auto ok = read_labelled_images(im, lb, 10);
  ASSERT_TRUE(ok.ok()) << ok.err().what;
  EXPECT_EQ(ok->count, 2);
  EXPECT_EQ(ok->labels[1], 9);
  EXPECT_NE(read_labelled_images(im, lb, 9).err().what.find("label 9 of item 1 is not below 9"), std::string::npos);
  write_bytes(im, idx_bytes(0x08, {3, 2, 2}, 12));
  EXPECT_NE(read_labelled_images(im, lb, 10).err().what.find("3 images but 2 labels"), std::string::npos);
}

TEST(Idx, ReadsDebiansFashionMnist) {
  const fs::path d = "/usr/share/datasets/fashion-mnist";
  if (!fs::exists(d / "t10k-images-idx3-ubyte.gz")) GTEST_SKIP() << "dataset-fashion-mnist is not installed";
  auto t = read_labelled_images(d / "t10k-images-idx3-ubyte.gz", d / "t10k-labels-idx1-ubyte.gz", 10);
  ASSERT_TRUE(t.ok()) << t.err().what;
  EXPECT_EQ(t->count, 10000);
  EXPECT_EQ(t->rows, 28);
  EXPECT_EQ(t->cols, 28);
  std::vector<int> per(10);
  for (auto l : t->labels) ++per[l];
  for (int c = 0; c < 10; ++c) EXPECT_EQ(per[c], 1000) << "class " << c;  // the test split is balanced
}

// --- PNG --------------------------------------------------------------------------------

TEST(Png, EncodesDecodableDeterministicFiles) {
  image8 g{5, 3, 1, {}};
  for (int i = 0; i < 15; ++i) g.pixels.push_back(static_cast<std::uint8_t>(i * 17));
  auto a = encode_png(g), b = encode_png(g);
  ASSERT_TRUE(a.ok()) << a.err().what;
  EXPECT_EQ(*a, *b);
  EXPECT_EQ(std::vector<std::uint8_t>(a->begin(), a->begin() + 8),
            (std::vector<std::uint8_t>{0x89, 'P', 'N', 'G', 0x0d, 0x0a, 0x1a, 0x0a}));
  auto back = decode_png(*a);
  ASSERT_TRUE(back.ok()) << back.err().what;
  EXPECT_EQ(back->pixels, g.pixels);
  EXPECT_EQ(back->width, 5);
  const image8 rgb = upscale(image8{1, 1, 3, {1, 2, 3}}, 3);
  EXPECT_EQ(rgb.width, 3);
  EXPECT_EQ(rgb.pixels.size(), 27u);
  auto rgb_back = decode_png(*encode_png(rgb));
  ASSERT_TRUE(rgb_back.ok());
  EXPECT_EQ(rgb_back->pixels, rgb.pixels);
  const image8 pics[] = {g, g, g};
  auto sheet = tile(pics, 2);
  ASSERT_TRUE(sheet.ok());
  EXPECT_EQ(sheet->width, 10);
  EXPECT_EQ(sheet->height, 6);
  EXPECT_EQ(sheet->pixels[static_cast<std::size_t>(3 * 10 + 5)], g.pixels[0]);  // third picture, second row
  EXPECT_EQ(sheet->pixels.back(), 0);                                           // the empty cell
}

TEST(Png, BadInputsAreErrors) {
  EXPECT_FALSE(encode_png(image8{2, 2, 2, std::vector<std::uint8_t>(8)}).ok());  // two channels
  EXPECT_FALSE(encode_png(image8{2, 2, 1, std::vector<std::uint8_t>(3)}).ok());  // short buffer
  EXPECT_FALSE(encode_png(image8{0, 2, 1, {}}).ok());
  EXPECT_FALSE(decode_png(bytes_of("not a png")).ok());
  image8 big{4000, 4000, 1, std::vector<std::uint8_t>(16000000)};
  auto png = encode_png(big);
  ASSERT_TRUE(png.ok());
  auto r = decode_png(*png, 1 << 20);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.err().code, errc::too_large);
  auto cut = *png;
  cut.resize(cut.size() / 2);
  EXPECT_FALSE(decode_png(cut).ok());
}

// --- model directories and prompts ------------------------------------------------------

TEST(ModelCard, TheShippedModelIsFoundAndDescribed) {
  auto dir = find_model("fashion-dit", {source_dir / "models"});
  ASSERT_TRUE(dir.ok()) << dir.err().what;
  auto card = read_model_card(*dir);
  ASSERT_TRUE(card.ok()) << card.err().what;
  EXPECT_EQ(card->config.name, "fashion-dit");
  EXPECT_EQ(card->class_names.size(), 10u);
  EXPECT_EQ(card->config.latent_channels, 1);
  auto missing = find_model("no-such-model", {source_dir / "models"});
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.err().what.find("models found: fashion-dit"), std::string::npos) << missing.err().what;
  EXPECT_FALSE(find_model("../etc", {source_dir / "models"}).ok());
}

TEST(ModelCard, PromptsMatchClassNamesOrNameTheNearest) {
  auto card = read_model_card(source_dir / "models" / "fashion-dit");
  ASSERT_TRUE(card.ok()) << card.err().what;
  EXPECT_EQ(*match_class(*card, "sneaker"), 7);
  EXPECT_EQ(*match_class(*card, "Ankle Boot"), 9);
  EXPECT_EQ(*match_class(*card, "  ankle-boot "), 9);
  EXPECT_EQ(*match_class(*card, "t-shirt"), 0);
  EXPECT_EQ(*match_class(*card, "T-shirt/top"), 0);
  EXPECT_EQ(*match_class(*card, "a photo of a pullover"), 2);
  EXPECT_EQ(*match_class(*card, "an ankle boot on grass"), 9);
  EXPECT_EQ(*match_class(*card, "a red t-shirt"), 0);  // "shirt" is inside "t shirt"
  auto boot = match_class(*card, "boot");
  ASSERT_FALSE(boot.ok());
  EXPECT_NE(boot.err().what.find("nearest: "), std::string::npos);
  auto typo = match_class(*card, "snekaer");
  ASSERT_FALSE(typo.ok());
  EXPECT_NE(typo.err().what.find("nearest: 'sneaker'"), std::string::npos) << typo.err().what;
  auto two = match_class(*card, "a shirt and a coat");
  ASSERT_FALSE(two.ok());
  EXPECT_NE(two.err().what.find("more than one class"), std::string::npos) << two.err().what;
  EXPECT_FALSE(match_class(*card, "  ").ok());
}

TEST(ModelCard, BadConfigsAreErrorsNamingTheFile) {
  const fs::path dir = temp_path("card");
  fs::create_directories(dir);
  auto j = nlohmann::json::parse(std::ifstream(source_dir / "models" / "fashion-dit" / "config.json"));
  auto write = [&](const nlohmann::json& v) { std::ofstream(dir / "config.json", std::ios::trunc) << v.dump(); };
  j["class_names"] = {"a", "b"};
  write(j);
  EXPECT_NE(read_model_card(dir).err().what.find("2 class_names for num_classes 10"), std::string::npos);
  j.erase("class_names");
  j["sampler"] = "euler_a";
  write(j);
  EXPECT_NE(read_model_card(dir).err().what.find("sampler 'euler_a'"), std::string::npos);
  j["sampler"] = "flow_euler";
  j["heads"] = 3;
  write(j);
  auto r = read_model_card(dir);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.err().what.find("config.json"), std::string::npos) << r.err().what;
  EXPECT_EQ(read_model_card(temp_path("nothing")).err().code, errc::not_found);
}
