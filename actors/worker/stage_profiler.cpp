#include "actors/worker/stage_profiler.hpp"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <sstream>

#include <sys/wait.h>
#include <unistd.h>

#include "actors/serving/stage.hpp"
#include "actors/serving/state_layout.hpp"
#include "actors/worker/dit_backend.hpp"
#include "kernels/dit/gpu_forward.hpp"
#include "kernels/dit/model_card.hpp"

namespace gfdit {

namespace {

// What a task of the schedule measures, read from members[0]'s report.
enum class measure { none, prepare, step, decode, reshard };

struct planned {
  msg::task_assign task;
  std::int32_t degree = 1;
  measure what = measure::none;
};

std::int64_t steady_us() {
  return std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

double median(std::vector<double> v) {
  if (v.empty()) return -1;
  std::sort(v.begin(), v.end());
  return v.size() % 2 ? v[v.size() / 2] : 0.5 * (v[v.size() / 2 - 1] + v[v.size() / 2]);
}

std::vector<std::int32_t> first(std::int32_t n) {
  std::vector<std::int32_t> m(static_cast<std::size_t>(n));
  for (std::int32_t i = 0; i < n; ++i) m[static_cast<std::size_t>(i)] = i;
  return m;
}

// The tasks a scheduler would send for one request on `members`, starting from `input`.
class schedule_builder {
 public:
  schedule_builder(std::string model, std::int64_t tokens, msg::generate_request req)
      : model_(std::move(model)), tokens_(tokens), req_(std::move(req)) {}

  std::uint64_t new_request() { return ++request_; }

  void add(std::uint64_t rid, stage s, std::int32_t begin, std::int32_t end, std::vector<std::int32_t> members,
           msg::artifact input, std::int32_t degree, measure what) {
    planned p;
    msg::task_assign& t = p.task;
    t.task_id = t.group_id = t.epoch = ++task_;
    t.request_id = rid;
    t.model = model_;
    t.tokens = tokens_;
    t.stage = std::string(to_string(s));
    t.step_begin = begin;
    t.step_end = end;
    t.members = std::move(members);
    input.request_id = rid;
    t.input = std::move(input);
    t.output_layout =
        std::string(to_string(t.members.size() > 1 ? state_layout::token_sharded : state_layout::owner_only));
    t.request = req_;
    t.request.request_id = rid;
    t.request.seed = rid;
    p.degree = degree;
    p.what = what;
    tasks.push_back(std::move(p));
  }

  std::vector<planned> tasks;

 private:
  std::string model_;
  std::int64_t tokens_;
  msg::generate_request req_;
  std::uint64_t request_ = 0, task_ = 0;
};

msg::artifact held_by(std::vector<std::int32_t> holders, state_layout l, std::int32_t steps_done) {
  msg::artifact a;
  a.holders = std::move(holders);
  a.layout = std::string(to_string(l));
  a.steps_done = steps_done;
  return a;
}

// Per degree and rep: prepare, a warm-up chunk, the timed chunk, decode; above degree 1 also a
// request that runs its first chunk on worker 0 alone and its second on the whole group (a move).
std::vector<planned> plan(const std::string& model, std::int64_t tokens, const msg::generate_request& req,
                          const std::vector<std::int32_t>& degrees, std::int32_t k, std::int32_t reps) {
  schedule_builder b(model, tokens, req);
  for (std::int32_t d : degrees) {
    const auto m = first(d);
    const auto kept = d > 1 ? state_layout::token_sharded : state_layout::owner_only;
    for (std::int32_t r = 0; r < reps; ++r) {
      const auto rid = b.new_request();
      b.add(rid, stage::prepare, 0, 0, m, held_by({}, state_layout::none, 0), d, measure::prepare);
      const auto start = d > 1 ? state_layout::replicated : state_layout::owner_only;
      b.add(rid, stage::denoise, 0, k, m, held_by(m, start, 0), d, measure::none);
      b.add(rid, stage::denoise, k, 2 * k, m, held_by(m, kept, k), d, measure::step);
      b.add(rid, stage::decode, 2 * k, 2 * k, m, held_by(m, kept, 2 * k), d, measure::decode);
      if (d == 1) continue;
      const auto moved = b.new_request();
      b.add(moved, stage::prepare, 0, 0, {0}, held_by({}, state_layout::none, 0), d, measure::none);
      b.add(moved, stage::denoise, 0, 1, {0}, held_by({0}, state_layout::owner_only, 0), d, measure::none);
      b.add(moved, stage::denoise, 1, 2, m, held_by({0}, state_layout::owner_only, 1), d, measure::reshard);
    }
  }
  return b.tasks;
}

// One rank's life in a forked child: join, run its share of the schedule, report on `out`.
[[noreturn]] void run_rank(dit_backend_config cfg, const std::vector<planned>& tasks, int out) {
  auto say = [out](const std::string& line) {
    const std::string l = line + "\n";
    // One write per line: lines of different ranks stay whole in the pipe (PIPE_BUF).
    [[maybe_unused]] auto n = ::write(out, l.data(), std::min<std::size_t>(l.size(), PIPE_BUF));
  };
  auto b = dit_backend::create(cfg, steady_us);
  if (!b) {
    say("fail " + std::to_string(cfg.rank) + " " + b.err().what);
    ::_exit(1);
  }
  std::vector<std::uint64_t> failed;  // requests whose later tasks cannot run
  for (std::size_t i = 0; i < tasks.size(); ++i) {
    const auto& t = tasks[i].task;
    if (std::find(t.members.begin(), t.members.end(), cfg.rank) == t.members.end()) continue;
    if (std::find(failed.begin(), failed.end(), t.request_id) != failed.end()) continue;
    std::optional<msg::result> picture;
    auto d = (*b)->run(t, &picture);
    if (!d) continue;  // not the reporting member
    if (!d->ok) failed.push_back(t.request_id);
    if (d->ok && t.stage == to_string(stage::decode) && picture && !picture->error.empty()) d->error = picture->error;
    std::ostringstream line;
    line << "task " << i << ' ' << (d->ok && d->error.empty() ? 1 : 0) << ' ' << (d->end_us - d->start_us) << ' '
         << d->reshard_us << ' ' << d->error;
    say(line.str());
  }
  b->reset();
  ::_exit(0);
}

// The GPUs this machine shows, asked in a child so this process stays clear of CUDA (ranks fork).
int count_gpus() {
  int fds[2];
  if (::pipe(fds) != 0) return 0;
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::close(fds[0]);
    const int n = dit::gpu_count();
    [[maybe_unused]] auto w = ::write(fds[1], &n, sizeof n);
    ::_exit(0);
  }
  ::close(fds[1]);
  int n = 0;
  if (pid < 0 || ::read(fds[0], &n, sizeof n) != sizeof n) n = 0;
  ::close(fds[0]);
  if (pid > 0) ::waitpid(pid, nullptr, 0);
  return n;
}

std::string ms(double us) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f ms", us / 1000.0);
  return buf;
}

}  // namespace

result<measured_model> measure_stages(const std::string& name, const std::string& dir, const stage_profile_options& o) {
  if (o.device != "cpu" && o.device != "gpu")
    return make_error(errc::invalid_argument, "profile: device '" + o.device + "' is neither cpu nor gpu");
  if (o.steps < 1 || o.reps < 1)
    return make_error(errc::invalid_argument, "profile: steps and reps must be at least 1");
  auto card = dit::read_model_card(dir);
  if (!card) return make_error(card.err().code, "model '" + name + "': " + card.err().what);
  const dit::model_config& c = card->config;
  if (c.cond != dit::conditioning::class_label || c.video())
    return make_error(errc::invalid_argument, "model '" + name + "': only class-conditional image models are served");
  auto note = [&](measured_model& m, std::string s) {
    if (o.progress) o.progress(name + ": " + s);
    m.notes.push_back(std::move(s));
  };

  measured_model m;
  m.name = name;
  const int stride = card->vae_dir.empty() ? 1 : 8;
  m.width = c.width * stride;
  m.height = c.height * stride;
  m.spatial_stride = c.patch_w * stride;
  m.tokens = c.image_tokens();
  m.state_bytes_per_token = static_cast<double>(c.patch_dim()) * sizeof(float);

  const int gpus = o.device == "gpu" ? count_gpus() : 0;
  if (o.device == "gpu" && gpus == 0) return make_error(errc::not_found, "profile: no CUDA device on this machine");
  std::vector<std::int32_t> degrees;
  for (std::int32_t d : o.degrees) {
    if (d < 1 || d > 64)
      note(m, "degree " + std::to_string(d) + ": not a group size (1 to 64)");
    else if (c.heads % d != 0)
      note(m, "degree " + std::to_string(d) + ": its " + std::to_string(c.heads) + " heads do not split over " +
                  std::to_string(d) + " ranks");
    else if (d > m.tokens)
      note(m, "degree " + std::to_string(d) + ": more ranks than its " + std::to_string(m.tokens) + " tokens");
    else if (o.device == "gpu" && d > gpus)
      note(m, "degree " + std::to_string(d) + ": this machine has " + std::to_string(gpus) + " GPU(s)");
    else if (std::find(degrees.begin(), degrees.end(), d) == degrees.end())
      degrees.push_back(d);
  }
  std::sort(degrees.begin(), degrees.end());
  if (degrees.empty())
    return make_error(errc::invalid_argument, "profile of '" + name + "': no degree can be measured");

  msg::generate_request req;
  req.model = name;
  req.width = m.width;
  req.height = m.height;
  req.steps = 2 * o.steps;
  req.guidance = card->default_guidance;
  req.label = 0;
  const auto tasks = plan(name, m.tokens, req, degrees, o.steps, o.reps);

  // A fresh world folder (rendezvous and checkpoints) for this run alone.
  std::string tmpl = (std::filesystem::temp_directory_path() / "gfdit-profile-XXXXXX").string();
  if (!::mkdtemp(tmpl.data())) return make_error(errc::io, "profile: cannot make a world folder under /tmp");
  const std::string world_dir = tmpl;
  int fds[2];
  if (::pipe(fds) != 0) return make_error(errc::io, "profile: pipe failed");
  const std::int32_t world = degrees.back();
  std::vector<pid_t> ranks;
  for (std::int32_t r = 0; r < world; ++r) {
    dit_backend_config cfg;
    cfg.world_dir = world_dir;
    cfg.world_size = world;
    cfg.rank = r;
    cfg.models = {{name, dir}};
    cfg.device = o.device;
    cfg.gpu_collectives = o.gpu_collectives;
    cfg.collective_timeout = o.collective_timeout;
    const pid_t pid = ::fork();
    if (pid == 0) {
      ::close(fds[0]);
      run_rank(cfg, tasks, fds[1]);
    }
    if (pid > 0) ranks.push_back(pid);
  }
  ::close(fds[1]);

  // members[0]'s reports, as they come.
  std::map<std::int32_t, std::map<measure, std::vector<double>>> got;
  std::map<std::int32_t, std::string> broken;  // degree -> first failure
  std::string startup_error;
  FILE* in = ::fdopen(fds[0], "r");
  char buf[PIPE_BUF + 1];
  while (in && std::fgets(buf, sizeof buf, in)) {
    std::istringstream line(buf);
    std::string kind;
    line >> kind;
    if (kind == "fail") {
      std::string rest;
      std::getline(line, rest);
      if (startup_error.empty()) startup_error = "rank" + rest;
      continue;
    }
    std::size_t i = 0;
    int ok = 0;
    double us = 0, reshard = 0;
    line >> i >> ok >> us >> reshard;
    std::string err;
    std::getline(line, err);
    if (i >= tasks.size()) continue;
    const planned& p = tasks[i];
    if (!ok) {
      if (!broken.count(p.degree)) {
        broken[p.degree] = p.task.stage + ":" + err;
        note(m, "degree " + std::to_string(p.degree) + ": " + p.task.stage + " failed:" + err);
      }
      continue;
    }
    const double steps = std::max(1, p.task.step_end - p.task.step_begin);
    switch (p.what) {
      case measure::prepare:
        got[p.degree][p.what].push_back(us);
        break;
      case measure::step:
        got[p.degree][p.what].push_back((us - reshard) / steps);
        break;
      case measure::decode:
        got[p.degree][p.what].push_back(us);
        break;
      case measure::reshard:
        got[p.degree][p.what].push_back(reshard);
        break;
      case measure::none:
        break;
    }
  }
  if (in) std::fclose(in);
  for (pid_t pid : ranks) ::waitpid(pid, nullptr, 0);
  std::error_code ec;
  std::filesystem::remove_all(world_dir, ec);
  if (!startup_error.empty())
    return make_error(errc::io, "profile of '" + name + "': a worker could not start: " + startup_error);

  for (std::int32_t d : degrees) {
    if (broken.count(d)) continue;
    auto& g = got[d];
    degree_timing t;
    t.degree = d;
    t.prepare_us = median(g[measure::prepare]);
    t.step_us = median(g[measure::step]);
    t.decode_us = median(g[measure::decode]);
    t.reshard_us = median(g[measure::reshard]);
    if (t.step_us < 0 || t.prepare_us < 0 || t.decode_us < 0) {
      note(m, "degree " + std::to_string(d) + ": no complete run");
      continue;
    }
    m.degrees.push_back(t);
    if (o.progress)
      o.progress(name + ": degree " + std::to_string(d) + ": prepare " + ms(t.prepare_us) + ", step " + ms(t.step_us) +
                 ", decode " + ms(t.decode_us) +
                 (t.reshard_us >= 0 ? ", move onto the group " + ms(t.reshard_us) : ""));
  }
  if (m.degrees.empty()) return make_error(errc::io, "profile of '" + name + "': no degree ran to the end");
  m.description = name + " (" + std::to_string(m.width) + "x" + std::to_string(m.height) +
                  "), measured by gfdit profile on " + o.device;
  return m;
}

}  // namespace gfdit
