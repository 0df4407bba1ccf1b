#include "launch/lib/top_view.hpp"

#include <cstdio>

namespace gfdit::launch {
namespace {

std::string bar(std::int32_t done, std::int32_t total, int width) {
  const int filled = total > 0 ? static_cast<int>(static_cast<std::int64_t>(width) * done / total) : 0;
  return "[" + std::string(static_cast<std::size_t>(filled), '#') +
         std::string(static_cast<std::size_t>(width - filled), '.') + "]";
}

std::string cut(const std::string& s, std::size_t n) { return s.size() <= n ? s : s.substr(0, n - 1) + "~"; }

}  // namespace

std::string render_top(const msg::cluster_state& s, const std::string& graph) {
  std::int32_t alive = 0, busy = 0;
  for (const auto& w : s.workers) {
    alive += w.alive ? 1 : 0;
    busy += w.alive && w.busy ? 1 : 0;
  }
  char line[256];
  std::string out;
  std::snprintf(
      line, sizeof line,
      "gfdit top: %s  workers %d/%d busy  groups %d  requests %d running, %d waiting  tasks %llu  reshards %llu\n",
      graph.c_str(), busy, alive, s.groups, s.running, s.waiting, static_cast<unsigned long long>(s.tasks_dispatched),
      static_cast<unsigned long long>(s.reshards));
  out += line;
  out += "workers:";
  for (const auto& w : s.workers) {
    if (!w.alive)
      std::snprintf(line, sizeof line, " %d:dead", w.id);
    else if (w.busy)
      std::snprintf(line, sizeof line, " %d:busy/%04llx", w.id, static_cast<unsigned long long>(w.group_id & 0xffff));
    else
      std::snprintf(line, sizeof line, " %d:idle", w.id);
    out += line;
  }
  out += "\n";
  std::snprintf(line, sizeof line, "%8s  %-22s %-12s %-8s %-24s %9s %5s %5s\n", "REQUEST", "MODEL", "CLASS", "STAGE",
                "PROGRESS", "STEPS", "GPUS", "MOVES");
  out += line;
  for (const auto& r : s.requests) {
    std::snprintf(line, sizeof line, "%8llu  %-22s %-12s %-8s %-24s %4d/%-4d %5d %5d%s\n",
                  static_cast<unsigned long long>(r.id), cut(r.model, 22).c_str(), cut(r.class_name, 12).c_str(),
                  r.running ? r.stage.c_str() : "waiting", bar(r.steps_done, r.steps_total, 22).c_str(), r.steps_done,
                  r.steps_total, r.group_size, r.regroupings, "");
    out += line;
  }
  const auto shown = static_cast<std::int32_t>(s.requests.size());
  if (shown < s.running + s.waiting) {
    std::snprintf(line, sizeof line, "... %d more\n", s.running + s.waiting - shown);
    out += line;
  }
  return out;
}

}  // namespace gfdit::launch
