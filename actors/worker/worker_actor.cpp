// The worker shell: one per GPU. It says hello and beats on topic "workers", hands the tasks,
// reshards and request ends addressed to it to its backend (worker_backend.hpp: sim, cpu or
// gpu), and sends the reports the backend gives back to the scheduler, when they are due.
//
// The cpu / gpu backend joins its World (rendezvous: bus, the default) through the world hub in the
// membership actor, after activation (only then is the graph wired): a world_joiner thread
// creates the backend, blocking in the rendezvous, while this actor's thread carries the
// WorldJoin/WorldBlobs messages. The worker says hello (so the scheduler uses it) only once it
// is in the World; a message that overtook the hello waits until then. `rendezvous: file`
// joins through files in world_dir at configure instead.
#include <deque>
#include <mutex>
#include <variant>

#include "actors/runtime/param_checks.hpp"
#include "actors/runtime/registry.hpp"
#include "actors/serving/model_time.hpp"
#include "actors/serving/serving_names.hpp"
#include "actors/serving/shell_params.hpp"
#include "actors/worker/dit_backend.hpp"
#include "actors/worker/worker_backend.hpp"
#include "actors/worker/world_joiner.hpp"
#include "messages/membership.hpp"
#include "messages/system.hpp"
#include "messages/world.hpp"

namespace gfdit {
namespace {

namespace names = serving_names;

class worker_actor : public actor {
 public:
  result<void> on_configure(context& ctx) override {
    if (auto r = declare_shell_params(ctx); !r) return r;
    if (auto r = ctx.params().declare<std::int64_t>("id", 0, "rank in the world", checks::at_least<std::int64_t>(0));
        !r)
      return r;
    if (auto r = ctx.params().declare<std::string>("backend", "sim", "sim | cpu | gpu",
                                                   checks::one_of({"sim", "cpu", "gpu"}));
        !r)
      return r;
    if (auto r =
            ctx.params().declare<std::int64_t>("gpu", -1, "gpu: CUDA device of this worker (-1: id % visible devices)",
                                               checks::at_least<std::int64_t>(-1));
        !r)
      return r;
    if (auto r = ctx.params().declare<std::string>("gpu_collectives", "cuda-ipc",
                                                   "gpu: cuda-ipc (one node) or nccl (several nodes)",
                                                   checks::one_of({"cuda-ipc", "nccl"}));
        !r)
      return r;
    if (auto r = ctx.params().declare<std::int64_t>("heartbeat_ms", 200); !r) return r;
    // cpu and gpu backends: every worker of the graph joins one World (same values everywhere).
    if (auto r =
            ctx.params().declare<std::string>("world_dir", "", "cpu/gpu: checkpoint (and file rendezvous) directory");
        !r)
      return r;
    if (auto r = ctx.params().declare<std::string>("rendezvous", "bus", "cpu/gpu: how the World is set up: bus | file",
                                                   checks::one_of({"bus", "file"}));
        !r)
      return r;
    if (auto r = ctx.params().declare<std::string>("world_hub", names::membership,
                                                   "cpu/gpu, rendezvous bus: the actor hosting the world hub");
        !r)
      return r;
    if (auto r = ctx.params().declare<std::string>("world", "serving",
                                                   "cpu/gpu, rendezvous bus: the World's name at the hub");
        !r)
      return r;
    if (auto r = ctx.params().declare<std::int64_t>("world_size", 0, "cpu/gpu: number of workers"); !r) return r;
    if (auto r = ctx.params().declare<std::int64_t>("collective_timeout_ms", 30000,
                                                    "cpu/gpu: a collective waiting longer fails the task",
                                                    checks::above<std::int64_t>(0));
        !r)
      return r;
    if (auto r = ctx.params().declare<std::int64_t>("weight_seed", 7, "cpu/gpu: seed of the DiT weights"); !r) return r;
    if (auto r = ctx.params().declare<std::string>("task_log", "", "cpu/gpu: append a line per task here (empty: off)");
        !r)
      return r;
    // Usually a global parameter of the launch file, so every worker serves the same.
    if (auto r = ctx.params().declare_json("models", param_type::map, nlohmann::json::object(),
                                           "cpu/gpu: checkpoints served, {name: {path: DIR, format: gfdit|diffusers}} "
                                           "(empty: every profiled model from seeded weights)",
                                           check_models);
        !r)
      return r;
    auto costs = load_costs(ctx);
    if (!costs) return costs.err();
    costs_ = *costs;
    id_ = static_cast<std::int32_t>(ctx.params().get<std::int64_t>("id"));
    if (ctx.name() != names::worker(id_))
      return make_error(errc::invalid_argument,
                        "a worker with id " + std::to_string(id_) + " must be named '" + names::worker(id_) + "'");
    speedup_ = ctx.params().get<double>("speedup");
    backend_name_ = ctx.params().get<std::string>("backend");
    // Reports come back on any thread; this one sends them, when they are due.
    wake_ = ctx.waker([this, &ctx] { send_reports(ctx); });
    report_ = [this](msg::task_done d, std::int64_t due_in_us) {
      {
        std::lock_guard lock(outbox_mu_);
        outbox_.push_back(due_report{std::move(d), due_in_us});
      }
      wake_();
    };
    picture_ = [this](msg::result picture, std::string reply_to) {
      {
        std::lock_guard lock(outbox_mu_);
        outbox_.push_back(picture_out{std::move(picture), std::move(reply_to)});
      }
      wake_();
    };
    warn_ = [&log = ctx.log()](const std::string& what) { log.warn("{}", what); };  // spdlog is thread-safe
    if (backend_name_ == "sim" && !ctx.params().get_json("models").empty())
      return make_error(errc::invalid_argument,
                        "parameter 'models': checkpoints are served by the cpu and gpu backends, not sim");
    if (backend_name_ == "sim")
      backend_ = make_sim_worker(id_, costs_, report_);
    else if (auto r = configure_dit(ctx); !r)
      return r;
    ctx.on<msg::task_assign>([this](const msg::task_assign& t, const envelope& e) {
      when_ready([this, t, now = model_now_us(e, speedup_)] { backend_->start(t, now); });
    });
    ctx.on<msg::reshard>(
        [this](const msg::reshard& m, const envelope&) { when_ready([this, m] { backend_->reshard(m); }); });
    // Late joiners ask (hello_query); answered once the World is up, when the hello is true.
    ctx.on<msg::hello_query>([this, &ctx](const msg::hello_query&, const envelope& e) {
      if (backend_) (void)ctx.send(e.sender, hello());
    });
    ctx.subscribe<msg::request_done>(names::done_topic, [this](const msg::request_done& d, const envelope&) {
      if (backend_) backend_->forget(d.request_id);  // before the World is up nothing is held
    });
    return {};
  }

  result<void> on_activate(context& ctx) override {
    if (!backend_) return join_world(ctx);
    announce(ctx);
    return {};
  }

  void on_shutdown(context&) override {
    joiner_.reset();   // cancels a join in progress
    backend_.reset();  // finishes the running task, drops the queued ones
  }

 private:
  msg::worker_hello hello() const {
    msg::worker_hello h{id_, "", "", backend_name_, {}};
    h.models = backend_->served_models();
    return h;
  }

  void announce(context& ctx) {
    (void)ctx.publish(names::workers_topic, hello());
    ctx.every(std::chrono::milliseconds(ctx.params().get<std::int64_t>("heartbeat_ms")), [this, &ctx] {
      (void)ctx.publish(names::workers_topic, msg::worker_heartbeat{id_, ++beats_});
    });
  }

  // rendezvous: bus. The backend is created on the joiner's thread; woken by it, this thread
  // sends the joins and, once the World is up, takes the backend, says hello and runs what
  // waited for it.
  result<void> join_world(context& ctx) {
    if (joiner_) return {};  // re-activated while still joining
    auto pump = ctx.waker([this, &ctx] {
      auto done = joiner_ ? joiner_->poll(ctx) : std::nullopt;
      if (!done) return;
      joiner_.reset();
      if (!*done) {
        ctx.log().error("joining the world failed, stopping: {}", done->err().what);
        ctx.request_stop();
        return;
      }
      backend_ = make_dit_worker(std::move(joined_), report_, warn_, picture_);
      ctx.log().info("joined the world as rank {} of {} through the bus", id_, dit_cfg_.world_size);
      announce(ctx);
      auto waiting = std::move(deferred_);
      deferred_.clear();
      for (auto& fn : waiting) fn();
    });
    joiner_ = std::make_unique<world_joiner>(
        ctx.params().get<std::string>("world_hub"), ctx.params().get<std::string>("world"), id_, dit_cfg_.world_size,
        [this](coll::rendezvous& rv) -> result<void> {
          auto be = dit_backend::create(dit_cfg_, rv, dit_clock_);
          if (!be) return be.err();
          joined_ = std::move(*be);
          return {};
        },
        std::move(pump));
    return {};
  }

  // Before the World is up (only a message that overtook our hello could come), keep the
  // message for later, in order.
  void when_ready(std::function<void()> fn) {
    if (backend_)
      fn();
    else
      deferred_.push_back(std::move(fn));
  }

  // The cpu and gpu backends (dit_backend): real DiT numerics.
  result<void> configure_dit(context& ctx) {
    dit_backend_config& cfg = dit_cfg_;
    cfg.device = backend_name_;
    cfg.gpu = static_cast<int>(ctx.params().get<std::int64_t>("gpu"));
    cfg.gpu_collectives = ctx.params().get<std::string>("gpu_collectives");
    cfg.world_dir = ctx.params().get<std::string>("world_dir");
    cfg.world_size = static_cast<std::int32_t>(ctx.params().get<std::int64_t>("world_size"));
    cfg.rank = id_;
    cfg.collective_timeout = std::chrono::milliseconds(ctx.params().get<std::int64_t>("collective_timeout_ms"));
    cfg.weight_seed = static_cast<std::uint64_t>(ctx.params().get<std::int64_t>("weight_seed"));
    cfg.task_log = ctx.params().get<std::string>("task_log");
    for (const auto& [name, m] : ctx.params().get_json("models").items())
      cfg.models[name] = m.at("path").get<std::string>();
    // Report times on the graph's model clock (the scheduler's, from the same wall clock).
    auto now_us = [speedup = speedup_] {
      const auto ns =
          std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::system_clock::now().time_since_epoch())
              .count();
      return static_cast<std::int64_t>(static_cast<double>(ns) / 1000.0 * speedup);
    };
    dit_clock_ = now_us;
    if (ctx.params().get<std::string>("rendezvous") == "file") {
      auto be = dit_backend::create(cfg, now_us);
      if (!be) return be.err();
      backend_ = make_dit_worker(std::move(*be), report_, warn_, picture_);
    } else {
      // What create() would refuse later, on the joiner's thread, is refused here already.
      if (auto r = dit_backend::check(cfg); !r) return r;
      ctx.on<msg::world_blobs>([this](const msg::world_blobs& m, const envelope&) {
        if (joiner_) joiner_->deliver(m);
      });
      ctx.on_delivery_failure([this, &ctx](const error& err, const envelope& env) {
        auto f = decode<msg::delivery_failure>(env.payload);
        if (joiner_ && f) joiner_->on_delivery_failure(err, f->type_id);
        ctx.log().warn("a message to '{}' was not delivered: {}", f ? f->destination : "?", err.what);
      });
    }
    return {};
  }

  void send_reports(context& ctx) {
    std::deque<std::variant<due_report, picture_out>> out;
    {
      std::lock_guard lock(outbox_mu_);
      out.swap(outbox_);
    }
    for (auto& item : out) {
      if (auto* p = std::get_if<picture_out>(&item)) {
        // Lost only if the receiver is gone; its RequestDone then tells the client.
        if (auto r = ctx.send(p->to, p->picture); !r)
          ctx.log().error("the picture of request {} did not go to '{}': {}", p->picture.request_id, p->to,
                          r.err().what);
        continue;
      }
      auto& [report, due_in_us] = std::get<due_report>(item);
      auto send = [&ctx, report = std::move(report)] {
        if (auto r = ctx.send(names::scheduler, report); !r) ctx.log().error("{}", r.err().what);
      };
      if (due_in_us > 0)
        ctx.after(wall_delay(due_in_us, speedup_), std::move(send));
      else
        send();
    }
  }

  // {name: {path, format}}: a path is required; format, when given, is gfdit or diffusers
  // (the directory's own files say which it is).
  static std::string check_models(const nlohmann::json& j) {
    for (const auto& [name, m] : j.items()) {
      if (name.empty()) return "a model name is empty";
      if (!m.is_object() || !m.contains("path") || !m["path"].is_string())
        return "model '" + name + "' needs {path: DIR}";
      for (const auto& [k, v] : m.items())
        if (k != "path" && k != "format") return "model '" + name + "': unknown key '" + k + "' (path, format)";
      if (m.contains("format") && m["format"] != "gfdit" && m["format"] != "diffusers")
        return "model '" + name + "': format must be gfdit or diffusers";
    }
    return {};
  }

  struct due_report {
    msg::task_done report;
    std::int64_t due_in_us = 0;
  };
  struct picture_out {
    msg::result picture;
    std::string to;
  };

  std::shared_ptr<const cost_model> costs_;
  dit_backend_config dit_cfg_;
  dit_backend::clock_fn dit_clock_;
  std::function<void()> wake_;
  worker_backend::report_fn report_;
  worker_backend::warn_fn warn_;
  worker_backend::picture_fn picture_;
  std::mutex outbox_mu_;
  std::deque<std::variant<due_report, picture_out>> outbox_;  // outbox_mu_: for send_reports(), in order
  std::unique_ptr<dit_backend> joined_;                       // set by the joiner's thread, taken once it has finished
  std::deque<std::function<void()>> deferred_;
  std::unique_ptr<world_joiner> joiner_;     // after joined_: its thread is stopped first
  std::unique_ptr<worker_backend> backend_;  // last: its thread stops before what its jobs use
  std::string backend_name_ = "sim";
  double speedup_ = 1.0;
  std::int32_t id_ = 0;
  std::uint64_t beats_ = 0;
};

}  // namespace
}  // namespace gfdit

GFDIT_REGISTER_ACTOR(gfdit::worker_actor, "gfdit.worker");
