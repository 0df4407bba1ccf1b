#include "actors/worker/dit_backend.hpp"

#include <algorithm>
#include <filesystem>
#include <fstream>

#include <fcntl.h>
#include <unistd.h>

#include "actors/serving/stage.hpp"
#include "actors/serving/state_layout.hpp"
#include "common/hash.hpp"
#include "kernels/collectives/file_rendezvous.hpp"
#include "kernels/dit/generate.hpp"
#include "kernels/dit/png.hpp"

namespace gfdit {

namespace {

constexpr float flow_shift = 3.0f;

std::string layout_error(const msg::artifact& a, std::int32_t rank, const char* what) {
  return "dit backend: worker " + std::to_string(rank) + " " + what + " of request " + std::to_string(a.request_id) +
         " (layout '" + a.layout + "')";
}

bool contains(std::span<const std::int32_t> xs, std::int32_t x) {
  return std::find(xs.begin(), xs.end(), x) != xs.end();
}

// My token shard of a whole latent under a group of `degree` where I am member `index`.
std::vector<float> slice(const dit::model_config& c, std::span<const float> whole, int degree, int index) {
  const auto s = dit::token_shard(c.image_tokens(), degree, index);
  const auto P = static_cast<std::size_t>(c.patch_dim());
  return {whole.begin() + static_cast<std::ptrdiff_t>(static_cast<std::size_t>(s.begin) * P),
          whole.begin() + static_cast<std::ptrdiff_t>(static_cast<std::size_t>(s.begin + s.count) * P)};
}

}  // namespace

result<dit::model_config> served_model_config(std::string_view model, std::int32_t width_px, std::int32_t height_px) {
  const std::string_view stock = model == "dit-tiny" ? std::string_view("tiny-dit") : model;
  auto c = dit::stock_config(stock);
  if (!c) return make_error(errc::not_found, "dit backend: no DiT config for model '" + std::string(model) + "'");
  if (c->cond != dit::conditioning::class_label || c->video())
    return make_error(errc::invalid_argument,
                      "dit backend: serves class-conditional image DiTs only, not '" + std::string(model) + "'");
  if (width_px <= 0 || height_px <= 0 || width_px % (8 * c->patch_w) != 0 || height_px % (8 * c->patch_h) != 0)
    return make_error(errc::invalid_argument, "dit backend: " + std::to_string(width_px) + "x" +
                                                  std::to_string(height_px) + " is not whole patches of '" +
                                                  std::string(model) + "'");
  c->name = std::string(model);
  c->width = width_px / 8;
  c->height = height_px / 8;
  if (auto v = dit::validate(*c); !v) return v.err();
  return *c;
}

dit::request served_request(const dit::model_config& c, const msg::generate_request& r) {
  dit::request q;
  q.seed = r.seed;
  q.steps = r.steps;
  q.sampler = dit::sampler_kind::flow_euler;
  q.guidance = static_cast<float>(r.guidance);
  q.shift = flow_shift;
  q.class_label = c.num_classes > 0 ? static_cast<int>(r.seed % static_cast<std::uint64_t>(c.num_classes)) : 0;
  return q;
}

std::uint64_t latent_hash(std::span<const float> latent) {
  return hash_float_bits(latent, 0x6c6174656e74ull);  // "latent"
}

result<void> dit_backend::check(const dit_backend_config& cfg) {
  if (cfg.device != "cpu" && cfg.device != "gpu")
    return make_error(errc::invalid_argument, "dit backend: device '" + cfg.device + "' is neither cpu nor gpu");
  if (cfg.device == "gpu" && cfg.gpu_collectives != "cuda-ipc" && cfg.gpu_collectives != "nccl")
    return make_error(errc::invalid_argument,
                      "gpu backend: gpu_collectives '" + cfg.gpu_collectives + "' is neither cuda-ipc nor nccl");
  if (cfg.device == "gpu" && !dit::gpu_available())
    return make_error(errc::not_found, "gpu backend: no CUDA device on this machine (or built without CUDA)");
  if (cfg.world_dir.empty()) return make_error(errc::invalid_argument, cfg.device + " backend: world_dir is empty");
  if (cfg.world_size < 1 || cfg.world_size > coll::max_world_size || cfg.rank < 0 || cfg.rank >= cfg.world_size)
    return make_error(errc::invalid_argument, cfg.device + " backend: rank " + std::to_string(cfg.rank) +
                                                  " outside a world of " + std::to_string(cfg.world_size));
  return {};
}

result<std::unique_ptr<dit_backend>> dit_backend::create(const dit_backend_config& cfg, clock_fn now_us) {
  if (auto r = check(cfg); !r) return r.err();
  coll::file_rendezvous rv(cfg.world_dir, cfg.rank, cfg.world_size);
  return create(cfg, rv, std::move(now_us));
}

result<std::unique_ptr<dit_backend>> dit_backend::create(const dit_backend_config& cfg, coll::rendezvous& rv,
                                                         clock_fn now_us) {
  if (auto r = check(cfg); !r) return r.err();
  if (rv.rank() != cfg.rank || rv.size() != cfg.world_size)
    return make_error(errc::invalid_argument, cfg.device + " backend: the rendezvous is for rank " +
                                                  std::to_string(rv.rank()) + " of " + std::to_string(rv.size()) +
                                                  ", the worker is rank " + std::to_string(cfg.rank) + " of " +
                                                  std::to_string(cfg.world_size));
  coll::world_options o;
  o.backend = coll::backend_kind::host;
  o.buffer_bytes = std::size_t{1} << 20;  // a tiny DiT's q/k/v and latent fit in one round
  o.channels = 1;                         // one group at a time per worker; reshard has its own
  o.timeout = cfg.collective_timeout;
  if (cfg.device == "gpu") {
    o.backend = cfg.gpu_collectives == "nccl" ? coll::backend_kind::nccl : coll::backend_kind::cuda_ipc;
    o.device = cfg.gpu >= 0 ? cfg.gpu : cfg.rank % dit::gpu_count();
    // The direct Ulysses window of the served DiTs at degree 8 with batched CFG (dit-xl-2-512: 8 MiB).
    o.buffer_bytes = std::size_t{32} << 20;
  }
  // The checkpoints first: a worker that cannot serve what it was given must not join.
  auto served = load_served(cfg.models);
  if (!served) return served.err();
  auto w = coll::World::create(rv, o);
  if (!w) return make_error(w.err().code, cfg.device + " backend: joining the world: " + w.err().what);
  auto be = std::unique_ptr<dit_backend>(new dit_backend(cfg, std::move(now_us), std::move(*w), std::move(*served)));
  // gpu: the served checkpoints go to the device now, before the worker says hello, not on the
  // first request (measured on an H100: that request waited for the upload and the CUDA set-up,
  // which put a constant ~0.07 s into the mean queue time of a 12-request run).
  if (be->on_gpu())
    for (const auto& [name, s] : be->served_) {
      auto g = dit::gpu_model::upload(s.model, be->world_->options().device);
      if (!g) return make_error(g.err().code, "model '" + name + "': uploading to the GPU: " + g.err().what);
      be->gpu_models_[&s.model] = std::move(*g);
    }
  return be;
}

result<std::map<std::string, dit_backend::served>> dit_backend::load_served(
    const std::map<std::string, std::string>& dirs) {
  std::map<std::string, served> out;
  for (const auto& [name, dir] : dirs) {
    auto card = dit::read_model_card(dir);
    if (!card) return make_error(card.err().code, "model '" + name + "': " + card.err().what);
    if (card->config.cond != dit::conditioning::class_label || card->config.video())
      return make_error(errc::invalid_argument,
                        "model '" + name + "' (" + dir + "): only class-conditional image models are served");
    auto m = dit::load_model(*card);
    if (!m) return make_error(m.err().code, "model '" + name + "': " + m.err().what);
    served s{std::move(*card), std::move(*m), std::nullopt, {}};
    if (!s.card.vae_dir.empty()) {
      auto v = dit::vae_decoder::load(s.card.vae_dir);
      if (!v) return make_error(v.err().code, "model '" + name + "': " + v.err().what);
      s.vae = std::move(*v);
    }
    const auto& c = s.card.config;
    const int stride = s.vae ? 8 : 1;  // pixels per latent pixel
    s.info.name = name;
    s.info.width = c.width * stride;
    s.info.height = c.height * stride;
    s.info.classes = s.card.class_names;
    if (s.info.classes.empty())
      for (int l = 0; l < c.num_classes; ++l) s.info.classes.push_back("class " + std::to_string(l));
    s.info.default_steps = s.card.default_steps;
    s.info.default_guidance = s.card.default_guidance;
    out.emplace(name, std::move(s));
  }
  return out;
}

std::vector<msg::served_model> dit_backend::served_models() const {
  std::vector<msg::served_model> out;
  for (const auto& [name, s] : served_) out.push_back(s.info);
  return out;
}

const dit_backend::served* dit_backend::served_for(const msg::generate_request& r) const {
  auto it = served_.find(r.model);
  return it == served_.end() ? nullptr : &it->second;
}

result<const dit::model*> dit_backend::model_for(const msg::generate_request& r) {
  if (!served_.empty()) {
    auto* s = served_for(r);
    if (!s)
      return make_error(errc::not_found,
                        name() + ": worker " + std::to_string(cfg_.rank) + " does not serve '" + r.model + "'");
    const msg::served_model& info = s->info;
    if (r.width != info.width || r.height != info.height)
      return make_error(errc::invalid_argument, name() + ": '" + r.model + "' draws " + std::to_string(info.width) +
                                                    "x" + std::to_string(info.height) + ", not " +
                                                    std::to_string(r.width) + "x" + std::to_string(r.height));
    if (on_gpu() && !gpu_models_.count(&s->model)) {
      auto g = dit::gpu_model::upload(s->model, world_->options().device);
      if (!g) return g.err();
      gpu_models_[&s->model] = std::move(*g);
    }
    return &s->model;
  }
  auto c = served_model_config(r.model, r.width, r.height);
  if (!c) return c.err();
  const std::string key = r.model + "/" + std::to_string(c->height) + "x" + std::to_string(c->width);
  auto it = models_.find(key);
  if (it == models_.end()) {
    // Seeded weights are a pure function of (seed, tensor, index): every worker has the same.
    auto m = dit::model::generate(*c, cfg_.weight_seed);
    if (!m) return m.err();
    it = models_.emplace(key, std::move(*m)).first;
    if (on_gpu()) {
      auto g = dit::gpu_model::upload(it->second, world_->options().device);
      if (!g) {
        models_.erase(it);
        return g.err();
      }
      gpu_models_[&it->second] = std::move(*g);
    }
  }
  return &it->second;
}

result<void> dit_backend::denoise(const dit::model& m, const dit::request& req, int begin, int end,
                                  const coll::Group& g, std::vector<float>& shard) {
  const dit::sp_group sp{world_.get(), g};
  if (on_gpu()) return gpu_models_.at(&m)->denoise(req, begin, end, sp, shard);
  return dit::denoise(m, req, begin, end, sp, shard);
}

result<std::vector<float>> dit_backend::reshard(const coll::Group& from, const coll::Group& to,
                                                const dit::model_config& c, std::span<const float> shard) {
  if (on_gpu()) return dit::reshard_on_device(*world_, from, to, c, shard);
  return dit::reshard(*world_, from, to, c, shard);
}

const dit_backend::held* dit_backend::find(const msg::artifact& a) const {
  auto it = held_.find(a.request_id);
  if (it == held_.end()) return nullptr;
  const held& h = it->second;
  if (h.steps_done != a.steps_done || h.replicated != (layout_from_string(a.layout) == state_layout::replicated))
    return nullptr;
  // A replica stays valid when the scheduler drops a lost holder from the list.
  const bool same = h.replicated ? std::all_of(a.holders.begin(), a.holders.end(),
                                               [&](std::int32_t r) { return contains(h.holders, r); })
                                 : h.holders == a.holders;
  return same ? &h : nullptr;
}

result<std::vector<float>> dit_backend::move(const msg::artifact& from, std::span<const std::int32_t> to,
                                             std::uint64_t epoch, const dit::model_config& c) {
  const std::int32_t me = cfg_.rank;
  const auto layout = layout_from_string(from.layout);
  if (layout == state_layout::none || layout == state_layout::checkpoint || from.holders.empty())
    return make_error(errc::invalid_argument, layout_error(from, me, "has no live copy to move"));
  const held* h = nullptr;
  if (contains(from.holders, me)) {
    // A holder without its part (restarted, or out of step) must not join with wrong data: its
    // peers time out and the task fails rather than giving a wrong result.
    h = find(from);
    if (!h) return make_error(errc::invalid_argument, layout_error(from, me, "does not hold its part"));
  }
  auto to_group = world_->form(to, epoch);
  if (!to_group) return to_group.err();
  if (layout == state_layout::replicated) {
    // Every holder has the whole latent. If every new member holds it, each takes its slice;
    // else the first holder alone sends (every participant derives the same source).
    const bool all_hold = std::all_of(to.begin(), to.end(), [&](std::int32_t r) { return contains(from.holders, r); });
    if (all_hold) {
      if (!to_group->is_member()) return std::vector<float>{};
      return slice(c, h->data, to_group->size(), to_group->self());
    }
    const std::int32_t src[] = {from.holders.front()};
    auto from_group = world_->form(src, epoch);
    if (!from_group) return from_group.err();
    return reshard(*from_group, *to_group, c,
                   from_group->is_member() ? std::span<const float>(h->data) : std::span<const float>{});
  }
  auto from_group = world_->form(from.holders, epoch);
  if (!from_group) return from_group.err();
  return reshard(*from_group, *to_group, c, h ? std::span<const float>(h->data) : std::span<const float>{});
}

result<dit::request> dit_backend::request_for(const dit::model_config& c, const msg::generate_request& r) const {
  dit::request req = served_request(c, r);
  if (const served* s = served_for(r)) {
    // As `gfdit generate` makes it from the card, so a served picture has its bytes.
    if (r.label >= c.num_classes)
      return make_error(errc::invalid_argument, name() + ": class " + std::to_string(r.label) + " of '" + r.model +
                                                    "', which has " + std::to_string(c.num_classes));
    dit::generate_options o;
    o.class_label = r.label >= 0 ? r.label : req.class_label;
    o.seed = r.seed;
    o.steps = r.steps;
    o.guidance = static_cast<float>(r.guidance);
    req = dit::make_request(s->card, o);
  } else if (r.label >= 0 && r.label < c.num_classes) {
    req.class_label = r.label;
  }
  if (auto v = dit::validate(c, req); !v) return v.err();
  return req;
}

msg::result dit_backend::draw(const served& s, const msg::task_assign& t, const std::vector<float>& latent) const {
  msg::result out;
  out.request_id = t.request_id;
  out.client_tag = t.request.client_tag;
  auto img = dit::decode_pixels(s.card, latent, s.vae ? &*s.vae : nullptr);
  if (!img) {
    out.error = name() + ": decoding request " + std::to_string(t.request_id) + ": " + img.err().what;
    return out;
  }
  auto png = dit::encode_png(*img);
  if (!png) {
    out.error = name() + ": PNG of request " + std::to_string(t.request_id) + ": " + png.err().what;
    return out;
  }
  out.media_type = "image/png";
  out.width = img->width;
  out.height = img->height;
  out.data = std::move(*png);
  return out;
}

result<std::uint64_t> dit_backend::execute(const msg::task_assign& t, std::int64_t& reshard_us,
                                           std::optional<msg::result>* picture) {
  const std::int32_t me = cfg_.rank;
  auto st = stage_from_string(t.stage);
  if (!st) return st.err();
  if (t.request.model != t.model)
    return make_error(errc::invalid_argument,
                      name() + ": the task carries no request parameters for '" + t.model + "'");
  auto m = model_for(t.request);
  if (!m) return m.err();
  const dit::model& model = **m;
  const dit::model_config& c = model.config();
  if (c.image_tokens() != t.tokens)
    return make_error(errc::invalid_argument, name() + ": " + t.model + " at " + std::to_string(t.request.width) + "x" +
                                                  std::to_string(t.request.height) + " has " +
                                                  std::to_string(c.image_tokens()) + " tokens, the task says " +
                                                  std::to_string(t.tokens));
  auto rq = request_for(c, t.request);
  if (!rq) return rq.err();
  const dit::request& req = *rq;
  auto g = world_->form(t.members, t.task_id);
  if (!g) return g.err();
  if (!g->is_member()) return make_error(errc::invalid_argument, name() + ": not a member of the task's group");
  const std::vector<std::int32_t> members(t.members.begin(), t.members.end());

  if (*st == stage::prepare) {
    // The noise is a function of the seed alone: each member makes the whole latent, no traffic
    // (at degree 1 the whole latent is also the one shard: layout "owner_only").
    held_[t.request_id] = held{&model, members, 0, members.size() > 1, dit::initial_latent(c, req, 1, 0)};
    return std::uint64_t{0};
  }

  // My shard under this group: from the checkpoint when a holder was lost, moved here when the
  // holders differ (exactly when the scheduler sends a Reshard to the old holders), else the
  // part I keep.
  const auto t0 = now_us_();
  std::vector<float> shard;
  if (layout_from_string(t.input.layout) == state_layout::checkpoint) {
    std::vector<float> whole;
    if (t.input.steps_done == 0) {
      whole = dit::initial_latent(c, req, 1, 0);
    } else {
      auto ck = read_checkpoint(t.request_id, t.input.steps_done, c);
      if (!ck) return ck.err();
      whole = std::move(*ck);
    }
    shard = slice(c, whole, g->size(), g->self());
  } else if (needs_move(t.input, t.members)) {
    auto mv = move(t.input, t.members, t.task_id, c);
    if (!mv) return mv.err();
    shard = std::move(*mv);
  } else {
    const held* h = find(t.input);
    if (!h) return make_error(errc::invalid_argument, layout_error(t.input, me, "does not hold its part"));
    shard = h->replicated ? slice(c, h->data, g->size(), g->self()) : h->data;
  }
  reshard_us = now_us_() - t0;
  // Until this task succeeds the part I keep stays as it was: a failed task is re-run from it.

  if (*st == stage::denoise) {
    if (auto r = denoise(model, req, t.step_begin, t.step_end, *g, shard); !r) return r.err();
    // Every member's shard is on disk before members[0] reports the chunk done.
    if (auto w = write_checkpoint(t.request_id, t.step_end, *g, shard); !w) return w.err();
    if (auto b = world_->barrier(*g); !b) return b.err();
    held_[t.request_id] = held{&model, members, t.step_end, false, std::move(shard)};
    return std::uint64_t{0};
  }

  // decode: gather the latent on members[0], which hashes it. The request is over for this worker.
  const std::int32_t owner[] = {t.members.front()};
  auto to0 = world_->form(owner, t.task_id);
  if (!to0) return to0.err();
  auto full = reshard(*g, *to0, c, shard);
  if (!full) return full.err();
  held_.erase(t.request_id);
  if (!to0->is_member()) return std::uint64_t{0};
  const auto latent = dit::unpatchify(c, *full);
  if (const served* s = served_for(t.request); s && picture) *picture = draw(*s, t, latent);
  return latent_hash(latent);
}

std::optional<msg::task_done> dit_backend::run(const msg::task_assign& t, std::optional<msg::result>* picture) {
  msg::task_done d = msg::report_of(t, cfg_.rank, now_us_());
  std::int64_t reshard_us = 0;
  auto r = execute(t, reshard_us, picture);
  d.end_us = now_us_();
  d.ok = r.ok();
  if (r)
    d.result_hash = *r;
  else
    d.error = r.err().what;
  d.reshard_us = std::max<std::int64_t>(0, reshard_us);
  d.compute_us = std::max<std::int64_t>(0, d.end_us - d.start_us - d.reshard_us);
  if (!reports(t, cfg_.rank)) return std::nullopt;
  if (!cfg_.task_log.empty()) log_task(t, d.ok, d.end_us - d.start_us);
  return d;
}

void dit_backend::log_task(const msg::task_assign& t, bool ok, std::int64_t us) const {
  std::string line = "request=";
  for (const std::string& part : {std::to_string(t.request_id), std::string(" task="), std::to_string(t.task_id),
                                  std::string(" stage="), t.stage, std::string(" steps="), std::to_string(t.step_begin),
                                  std::string("-"), std::to_string(t.step_end), std::string(" members=")})
    line += part;
  for (std::size_t i = 0; i < t.members.size(); ++i) {
    if (i) line += ',';
    line += std::to_string(t.members[i]);
  }
  line += " input=";
  line += t.input.layout;
  line += ok ? " ok=1" : " ok=0";
  line += " us=" + std::to_string(us) + "\n";
  // One write with O_APPEND: lines of the graph's workers interleave whole.
  const int fd = ::open(cfg_.task_log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) return;
  (void)!::write(fd, line.data(), line.size());
  ::close(fd);
}

result<void> dit_backend::on_reshard(const msg::reshard& r) {
  // Members of the new group move at the start of their task (it names the model and shape).
  if (contains(r.to_members, cfg_.rank) || !contains(r.from.holders, cfg_.rank)) return {};
  const held* h = find(r.from);
  if (!h) return make_error(errc::invalid_argument, layout_error(r.from, cfg_.rank, "does not hold its part"));
  // The part stays here until the request ends: if the task fails, its retry moves it again.
  auto mv = move(r.from, r.to_members, r.task_id, h->model->config());
  if (!mv) return mv.err();
  return {};
}

namespace {

// (Appends, not "literal" + string: GCC 12 warns falsely on that form.)
std::string request_prefix(std::uint64_t request_id) {
  std::string s = "r";
  s += std::to_string(request_id);
  s += '-';
  return s;
}
std::string checkpoint_prefix(std::uint64_t request_id, std::int32_t steps) {
  std::string s = request_prefix(request_id);
  s += 's';
  s += std::to_string(steps);
  s += '-';
  return s;
}

}  // namespace

std::filesystem::path dit_backend::checkpoint_dir() const {
  return std::filesystem::path(cfg_.world_dir) / "checkpoints";
}

result<void> dit_backend::write_checkpoint(std::uint64_t request_id, std::int32_t steps, const coll::Group& g,
                                           std::span<const float> shard) const {
  std::error_code ec;
  std::filesystem::create_directories(checkpoint_dir(), ec);
  const std::string file =
      checkpoint_prefix(request_id, steps) + std::to_string(g.self()) + "of" + std::to_string(g.size());
  const auto tmp = checkpoint_dir() / (".tmp." + file + "." + std::to_string(cfg_.rank));
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(shard.data()), static_cast<std::streamsize>(shard.size_bytes()));
    if (!out) return make_error(errc::io, name() + ": cannot write checkpoint " + tmp.string());
  }
  std::filesystem::rename(tmp, checkpoint_dir() / file, ec);  // atomic: a reader sees all or nothing
  if (ec) return make_error(errc::io, name() + ": checkpoint rename: " + ec.message());
  return {};
}

result<std::vector<float>> dit_backend::read_checkpoint(std::uint64_t request_id, std::int32_t steps,
                                                        const dit::model_config& c) const {
  // The degree of the chunk that wrote it is in the names: "<prefix><index>of<degree>".
  const std::string prefix = checkpoint_prefix(request_id, steps);
  int degree = 0;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(checkpoint_dir(), ec)) {
    const std::string n = e.path().filename().string();
    if (n.rfind(prefix, 0) != 0) continue;
    const auto of = n.find("of", prefix.size());
    if (of != std::string::npos) degree = std::atoi(n.c_str() + of + 2);
    break;
  }
  if (degree < 1 || degree > coll::max_group_size)
    return make_error(errc::not_found, name() + ": no checkpoint of request " + std::to_string(request_id) +
                                           " at step " + std::to_string(steps));
  const auto P = static_cast<std::size_t>(c.patch_dim());
  std::vector<float> whole(static_cast<std::size_t>(c.image_tokens()) * P);
  for (int i = 0; i < degree; ++i) {
    const auto s = dit::token_shard(c.image_tokens(), degree, i);
    const auto path = checkpoint_dir() / (prefix + std::to_string(i) + "of" + std::to_string(degree));
    std::ifstream in(path, std::ios::binary);
    const auto bytes = static_cast<std::streamsize>(static_cast<std::size_t>(s.count) * P * sizeof(float));
    in.read(reinterpret_cast<char*>(whole.data() + static_cast<std::size_t>(s.begin) * P), bytes);
    if (!in || in.gcount() != bytes || in.peek() != std::char_traits<char>::eof())
      return make_error(errc::io, name() + ": checkpoint " + path.string() + " is missing or has the wrong size");
  }
  return whole;
}

void dit_backend::forget(std::uint64_t request_id) {
  held_.erase(request_id);
  // Its checkpoints too (every worker tries; the first one to get there removes them).
  const std::string prefix = request_prefix(request_id);
  std::error_code ec;
  std::vector<std::filesystem::path> mine;
  for (const auto& e : std::filesystem::directory_iterator(checkpoint_dir(), ec))
    if (e.path().filename().string().rfind(prefix, 0) == 0) mine.push_back(e.path());
  for (const auto& p : mine) std::filesystem::remove(p, ec);
}

}  // namespace gfdit
