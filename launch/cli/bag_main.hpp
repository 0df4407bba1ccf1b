#pragma once
// The bag and replay tools as library entry points, so the `gfdit` CLI and the standalone
// `gfdit-bag` executable share them. argv[0] is the tool's name; argv[1] the subcommand.
//
//   bag info BAG [--json] [--verify | --no-verify]
//   bag echo BAG [--json] [--type T] [--actor A] [--topic T] [--sender S] [--from N] [--limit N]
//   bag filter IN OUT [--type T] [--actor A] [--topic T] [--sender S] [--from N] [--to N]
//   bag repair BAG [OUT | --out OUT | --in-place]   (OUT defaults to BAG.repaired)
//   bag timeline BAG --out trace.json|gantt.svg [--out ...]
//   bag play BAG --peer NODE=ENDPOINT... [--rate R] [--loop] [--start S] [--end S] [filters]
//   bag record OUT --peer NODE=ENDPOINT... [--duration S] [filters]   (topics of the graph)
//   replay BAG --actor A [--core NAME] [--policy P] [--option K=V]... [--step]
//   replay BAG --replace A,B [name:=value ...] [--launch FILE] [--rate R] [--no-gate] [--gate-timeout-ms MS]
//          [--linger S] [--timeout S] [--ignore F,G] [--gfdit EXE] [--keep DIR]   (replay_replace.hpp)
//
// Exit status: 0 success (replay: identical), 1 replay divergence, a damaged chunk (info) or one
// dropped (repair), 2 usage or input errors.
namespace gfdit {

int bag_main(int argc, char** argv);
int replay_main(int argc, char** argv);

}  // namespace gfdit
