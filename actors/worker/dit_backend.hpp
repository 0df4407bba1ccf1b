#pragma once
// The `cpu` and `gpu` worker backends: real DiT numerics (kernels/dit), on the host with Ulysses
// across the workers of a graph through the group-free host collectives, or on one GPU per
// worker (gpu_model) with Ulysses through a cuda-ipc World (one node) or an NCCL World (several
// nodes), the latent's moves staged through device memory. Every worker joins one World once
// (at start, through the bus or files); a group is then only metadata formed per task, so the
// scheduler may regroup a request between any two chunks and the bits of its result do not change.
//
// Per request the backend keeps this worker's part of the latent and the holder list it belongs
// to. A task whose group differs from the holders first moves the latent (World::reshard): the
// members do it at the start of the task, old holders outside the new group when the scheduler's
// Reshard reaches them. Every participant derives the same groups (holders, members, epoch =
// task id) from the messages alone, and a worker runs its messages in the scheduler's order, so
// the collectives match up. Collectives are blocking and bounded by `collective_timeout`: a dead
// or absent peer turns into a failed TaskDone, never a hang.
//
// Stages: prepare = the initial noise (the whole latent on every member: layout "replicated"),
// denoise = dit::denoise over the step range at degree = group size, then each member writes its
// shard to a host checkpoint file and the group meets at a barrier before the report (so a
// reported chunk always has a complete checkpoint), decode = gather to members[0], which reports
// the hash of the final latent's bits (TaskDone.result_hash) and, for a served checkpoint, decodes
// it (the VAE, or the pixel range) and hands the PNG back as a serving.result. When a holder dies the scheduler
// sends the "checkpoint" layout: the members read the shards of the last reported chunk from
// <world_dir>/checkpoints (or remake the noise at step 0) and go on with the same bits.
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.hpp"
#include "kernels/collectives/world.hpp"
#include "kernels/dit/gpu_forward.hpp"
#include "kernels/dit/model.hpp"
#include "kernels/dit/model_card.hpp"
#include "kernels/dit/sampler.hpp"
#include "kernels/dit/vae.hpp"
#include "messages/membership.hpp"
#include "messages/serving.hpp"

namespace gfdit {

struct dit_backend_config {
  // Checkpoint directory (and file rendezvous directory), the same for every worker of the graph.
  std::string world_dir;
  std::int32_t world_size = 0;
  std::int32_t rank = 0;                                // = the worker id
  std::chrono::milliseconds collective_timeout{30000};  // also bounds joining the World
  std::uint64_t weight_seed = 7;                        // seeded weights: the same on every worker
  // Checkpoints served, by model name: a model directory (model_card.hpp: gfdit's layout or a
  // diffusers DiTPipeline folder). Loaded once, at create(). A worker with none serves every
  // profiled model from seeded weights (benchmarks); with some, exactly those.
  std::map<std::string, std::string> models;
  // If set, the reporting member appends one line per task to this file ("request=R task=T
  // stage=S steps=B-E members=a,b input=<layout> ok=1"): what ran where, for demos and tests.
  std::string task_log;
  // "cpu" or "gpu"; gpu: the CUDA device (-1: rank % visible devices), and the collectives:
  // "cuda-ipc" (one node; the DiT's direct Ulysses exchange) or "nccl" (any number of nodes;
  // pack / all_to_all / unpack).
  std::string device = "cpu";
  int gpu = -1;
  std::string gpu_collectives = "cuda-ipc";
};

// What a request of a seeded model computes; shared with tests that compute references.
// A served model is a class-conditional 2-D DiT from dit::stock_config, named as in the cost
// profiles ("dit-tiny" is dit's "tiny-dit"). The latent is the image over a VAE stride of 8
// (so a 2x2 patch makes the profiles' 16 pixels per token side).
result<dit::model_config> served_model_config(std::string_view model, std::int32_t width_px, std::int32_t height_px);
// Flow-matching Euler (shift 3), CFG at the request's guidance, class label = seed % classes.
dit::request served_request(const dit::model_config& c, const msg::generate_request& r);
// The reported hash: splitmix64 chain over the bits of the unpatchified latent [C][F][H][W].
std::uint64_t latent_hash(std::span<const float> latent);

class dit_backend {
 public:
  using clock_fn = std::function<std::int64_t()>;  // model microseconds, for the report's times

  // What create() refuses in a configuration before joining anything (device, collectives, a GPU
  // to run on, world_dir, rank within world_size): the worker checks at configure what its
  // joiner thread would otherwise find out later.
  static result<void> check(const dit_backend_config& cfg);
  // Joins the World: collective over every worker of the graph (blocks until all have come, or
  // fails after the collective timeout). This one meets the others through a file_rendezvous in
  // world_dir; the other through `rv` (the worker passes a bus_rendezvous).
  static result<std::unique_ptr<dit_backend>> create(const dit_backend_config& cfg, clock_fn now_us);
  static result<std::unique_ptr<dit_backend>> create(const dit_backend_config& cfg, coll::rendezvous& rv,
                                                     clock_fn now_us);

  // Runs a task this worker is a member of, blocking. Returns the report for members[0] (ok or
  // failed), nothing on the other members. A decode of a served checkpoint on members[0] also
  // fills `picture` (when given): the PNG, or the error that stopped it.
  std::optional<msg::task_done> run(const msg::task_assign& t, std::optional<msg::result>* picture = nullptr);
  // The checkpoints this worker serves, as its hello tells clients.
  std::vector<msg::served_model> served_models() const;
  // A request moves off (or onto) this worker. Members of the new group move at the start of the
  // task; an old holder outside it takes part here and then drops its part.
  result<void> on_reshard(const msg::reshard& r);
  // The request ended: drop whatever is left of it.
  void forget(std::uint64_t request_id);

  std::int32_t rank() const noexcept { return cfg_.rank; }
  std::size_t held_requests() const noexcept { return held_.size(); }

 private:
  // A served checkpoint: its card, weights and decoder.
  struct served {
    dit::model_card card;
    dit::model model;
    std::optional<dit::vae_decoder> vae;  // latent models
    msg::served_model info;               // as the hello tells it (name, size in pixels, classes)
  };
  // This worker's part of a request's latent, as of the last task that succeeded on it. A part
  // is used only when the scheduler's artifact names the same holders and steps; one left behind
  // by a move stays until the request ends, so a failed task can be retried from it.
  struct held {
    const dit::model* model = nullptr;
    std::vector<std::int32_t> holders;  // the group whose layout `data` is in
    std::int32_t steps_done = 0;
    bool replicated = false;  // data is the whole latent (after prepare)
    std::vector<float> data;  // else my token shard under `holders`
  };

  dit_backend(dit_backend_config cfg, clock_fn now_us, std::unique_ptr<coll::World> w, std::map<std::string, served> s)
      : cfg_(std::move(cfg)), now_us_(std::move(now_us)), world_(std::move(w)), served_(std::move(s)) {}

  static result<std::map<std::string, served>> load_served(const std::map<std::string, std::string>& dirs);
  const served* served_for(const msg::generate_request& r) const;
  result<const dit::model*> model_for(const msg::generate_request& r);
  result<dit::request> request_for(const dit::model_config& c, const msg::generate_request& r) const;
  // The decode stage of a served checkpoint: latent [C][F][H][W] -> PNG.
  msg::result draw(const served& s, const msg::task_assign& t, const std::vector<float>& latent) const;
  // Moves the request's latent from `from` onto `to` (token-sharded in member order). Called by
  // every worker in either list; returns my shard under `to` (empty when not in it).
  result<std::vector<float>> move(const msg::artifact& from, std::span<const std::int32_t> to, std::uint64_t epoch,
                                  const dit::model_config& c);
  // My part of the request as the artifact describes it, or null when I do not hold one.
  const held* find(const msg::artifact& a) const;
  result<std::uint64_t> execute(const msg::task_assign& t, std::int64_t& reshard_us,
                                std::optional<msg::result>* picture);
  void log_task(const msg::task_assign& t, bool ok, std::int64_t us) const;  // us: the task's duration
  result<void> write_checkpoint(std::uint64_t request_id, std::int32_t steps, const coll::Group& g,
                                std::span<const float> shard) const;
  std::filesystem::path checkpoint_dir() const;
  result<std::vector<float>> read_checkpoint(std::uint64_t request_id, std::int32_t steps,
                                             const dit::model_config& c) const;

  dit_backend_config cfg_;
  clock_fn now_us_;
  std::unique_ptr<coll::World> world_;
  std::map<std::string, served> served_;      // by model name
  std::map<std::string, dit::model> models_;  // seeded: by "<model>/<h>x<w>": weights per latent shape
  std::map<const dit::model*, std::unique_ptr<dit::gpu_model>> gpu_models_;  // gpu: their device copies
  bool on_gpu() const noexcept { return cfg_.device == "gpu"; }
  std::string name() const { return cfg_.device + " backend"; }
  // The step range on my shard, on the host or the GPU.
  result<void> denoise(const dit::model& m, const dit::request& req, int begin, int end, const coll::Group& g,
                       std::vector<float>& shard);
  // dit::reshard, staged through device memory on a GPU World.
  result<std::vector<float>> reshard(const coll::Group& from, const coll::Group& to, const dit::model_config& c,
                                     std::span<const float> shard);
  std::map<std::uint64_t, held> held_;  // by request id
};

}  // namespace gfdit
