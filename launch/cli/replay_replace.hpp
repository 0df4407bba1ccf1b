#pragma once
// `gfdit replay BAG --replace A,B`: the recorded graph runs live, with actors A and B swapped
// for players that emit what A and B sent in the recording (sender names, seq, stamps,
// destinations and correlation ids as recorded, in recorded order, paced by the recorded stamps
// and gated on the live inputs that caused them; see player_actor.cpp). The recorder that made
// the bag records the replay in its place, and at the end every actor's outputs in the replay
// are compared with the recording, per actor. The graph is the launch file whose text the bag
// holds (or --launch FILE), loaded with the given name:=value arguments, flattened and launched
// as `gfdit launch` would.
#include <string>
#include <vector>

namespace gfdit {

struct replace_options {
  std::string bag;
  std::vector<std::string> replace;        // the actors stood in for
  std::string launch_file;                 // empty: the launch text in the bag's header
  std::vector<std::string> args;           // name:=value for the launch file (as when recorded)
  double rate = 1.0;                       // 0: as fast as the gates let the players go
  bool gate = true;                        // hold each recorded message until its live cause came
  int gate_timeout_ms = 5000;              // a recorded message whose cause never comes goes anyway
  double linger_s = 0.5;                   // after the players finish, before the graph is stopped
  double timeout_s = 0;                    // 0: the bag's duration / rate + 30 s
  std::vector<std::string> ignore_fields;  // payload fields not compared (wall-clock times)
  std::string gfdit_exe;                   // runs the nodes; default: GFDIT_EXE, this one, or found
  std::string work_dir;                    // keep the flattened launch file and replay bag here
};

// Exit status: 0 every compared actor sent what it sent in the recording, 1 a divergence (or
// the graph failed), 2 usage or input errors (unknown actor, no launch text, bad launch file).
int replay_replace(const replace_options& o);

}  // namespace gfdit
