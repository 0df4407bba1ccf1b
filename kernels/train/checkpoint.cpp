#include "kernels/train/checkpoint.hpp"

#include <cstdio>
#include <fstream>
#include <map>

#include "common/text.hpp"
#include "kernels/dit/model.hpp"
#include "kernels/dit/safetensors.hpp"

namespace gfdit::train {

namespace fs = std::filesystem;

namespace {

std::string exact(double x) {  // 17 digits: doubles (and so floats) read back to the same bits
  char b[40];
  std::snprintf(b, sizeof b, "%.17g", x);
  return b;
}

std::map<std::string, std::string> options_metadata(const train_options& o, std::int64_t step,
                                                    std::int64_t data_count) {
  const auto& a = o.adamw;
  return {{"gfdit.train.step", std::to_string(step)},
          {"gfdit.train.data_count", std::to_string(data_count)},
          {"gfdit.train.steps", std::to_string(o.steps)},
          {"gfdit.train.batch", std::to_string(o.batch)},
          {"gfdit.train.seed", std::to_string(o.seed)},
          {"gfdit.train.init_seed", std::to_string(o.init_seed)},
          {"gfdit.train.label_drop", exact(o.label_drop)},
          {"gfdit.train.lr", exact(a.lr)},
          {"gfdit.train.beta1", exact(a.beta1)},
          {"gfdit.train.beta2", exact(a.beta2)},
          {"gfdit.train.eps", exact(a.eps)},
          {"gfdit.train.weight_decay", exact(a.weight_decay)},
          {"gfdit.train.clip", exact(a.clip)},
          {"gfdit.train.warmup", std::to_string(a.warmup)},
          {"gfdit.train.ema_max", exact(a.ema_max)}};
}

result<void> rename_into(const fs::path& tmp, const fs::path& path) {
  std::error_code ec;
  fs::rename(tmp, path, ec);
  if (ec) return make_error(errc::io, "train: cannot rename " + tmp.string() + ": " + ec.message());
  return {};
}

}  // namespace

result<void> save_checkpoint(const fs::path& dir, const std::string& card_json, const trainer& t) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return make_error(errc::io, "train: cannot create " + dir.string() + ": " + ec.message());
  const auto& L = t.layout();
  const auto& s = t.state();
  std::map<std::string, std::vector<float>> ema;
  dit::st_file state;
  state.metadata = options_metadata(t.options(), s.step, t.data_count());
  state.metadata["gfdit.config"] = dit::to_json(L.config);
  for (std::size_t i = 0; i < L.specs.size(); ++i) {
    const auto b = static_cast<std::ptrdiff_t>(L.offset[i]), e = b + L.specs[i].numel();
    auto put = [&](const std::string& prefix, const std::vector<float>& v) {
      state.tensors[prefix + L.specs[i].name] = {"F32", L.specs[i].shape, {v.begin() + b, v.begin() + e}};
    };
    put("param/", t.params());
    put("adam_m/", s.m);
    put("adam_v/", s.v);
    put("ema/", s.ema);
    ema[L.specs[i].name].assign(s.ema.begin() + b, s.ema.begin() + e);
  }
  auto served = dit::model::from_named(L.config, std::move(ema), "train: EMA weights");
  if (!served) return served.err();
  const fs::path model_tmp = dir / "model.safetensors.tmp", state_tmp = dir / "train_state.safetensors.tmp";
  if (auto r = served->save(model_tmp); !r) return r;
  if (auto r = dit::write_safetensors(state_tmp, state, "F32"); !r) return r;
  if (auto r = write_text_atomically(dir / "config.json", card_json); !r) return r;
  if (auto r = rename_into(model_tmp, dir / "model.safetensors"); !r) return r;
  return rename_into(state_tmp, dir / "train_state.safetensors");
}

result<train_state> load_train_state(const fs::path& dir, const param_layout& L) {
  const fs::path path = dir / "train_state.safetensors";
  auto f = dit::read_safetensors(path);
  if (!f) return f.err();
  auto meta = [&](const std::string& key) -> result<std::string> {
    const auto it = f->metadata.find("gfdit.train." + key);
    if (it == f->metadata.end())
      return make_error(errc::invalid_argument, path.string() + ": no metadata '" + key + "'");
    return it->second;
  };
  const auto cfg = f->metadata.find("gfdit.config");
  if (cfg == f->metadata.end() || cfg->second != dit::to_json(L.config))
    return make_error(errc::invalid_argument, path.string() + ": saved for another model than '" + L.config.name + "'");
  train_state out;
  try {
    auto& o = out.options;
    auto& a = o.adamw;
    o.steps = std::stoll(*meta("steps"));
    o.batch = std::stoi(*meta("batch"));
    o.seed = std::stoull(*meta("seed"));
    o.init_seed = std::stoull(*meta("init_seed"));
    o.label_drop = std::stof(*meta("label_drop"));
    a.lr = std::stof(*meta("lr"));
    a.beta1 = std::stof(*meta("beta1"));
    a.beta2 = std::stof(*meta("beta2"));
    a.eps = std::stof(*meta("eps"));
    a.weight_decay = std::stof(*meta("weight_decay"));
    a.clip = std::stof(*meta("clip"));
    a.warmup = std::stoi(*meta("warmup"));
    a.ema_max = std::stof(*meta("ema_max"));
    out.state.step = std::stoll(*meta("step"));
    out.data_count = std::stoll(*meta("data_count"));
  } catch (const std::exception&) {  // a missing key (bad result access) or a malformed number
    return make_error(errc::invalid_argument, path.string() + ": missing or malformed gfdit.train metadata");
  }
  const auto n = static_cast<std::size_t>(L.total);
  out.params.resize(n), out.state.m.resize(n), out.state.v.resize(n), out.state.ema.resize(n);
  for (std::size_t i = 0; i < L.specs.size(); ++i) {
    const auto b = static_cast<std::ptrdiff_t>(L.offset[i]);
    for (auto [prefix, dst] : {std::pair{"param/", &out.params}, std::pair{"adam_m/", &out.state.m},
                               std::pair{"adam_v/", &out.state.v}, std::pair{"ema/", &out.state.ema}}) {
      const std::string name = prefix + L.specs[i].name;
      const auto it = f->tensors.find(name);
      if (it == f->tensors.end() || it->second.dtype != "F32" || it->second.shape != L.specs[i].shape)
        return make_error(errc::invalid_argument, path.string() + ": tensor '" + name + "' is missing or not F32 " +
                                                      dit::shape_text(L.specs[i].shape));
      std::copy(it->second.values.begin(), it->second.values.end(), dst->begin() + b);
    }
  }
  if (f->tensors.size() != 4 * L.specs.size())
    return make_error(errc::invalid_argument, path.string() + ": holds tensors other than the model's state");
  return out;
}

}  // namespace gfdit::train
