#!/usr/bin/env bash
# Carry long runs' checkpoints across machines. A session here can end on one machine and the next start on a fresh
# one; what comes back is the committed tree plus, where it can be recovered, the uncommitted files that git does not
# ignore. Checkpoints are ignored (results/**/checkpoint*.pt: tens of MB each, never committed), so a fresh machine
# starts every unfinished run from step 0. This copies each run folder's checkpoint.pt to carry/<same path> (not
# ignored, never to be committed: add files by name, not with `git add -A`), and puts them back on a fresh machine.
#   bash tools/carry.sh save      # before a session ends; never replaces a carried copy by one at an earlier step
#   bash tools/carry.sh restore   # at a session's start, BEFORE resuming any run: copies back where no checkpoint is
#   bash tools/carry.sh list      # what is carried, with each checkpoint's step
# Runs trained together (mac_train --seeds …) are checkpointed at one step; copy them while they are stopped, or check
# that `list` shows one step for all of them (a checkpoint written between two copies leaves them a step apart).
set -euo pipefail
cd "$(dirname "$0")/.."
step() { .venv/bin/python -c "import sys, torch; print(torch.load(sys.argv[1], map_location='cpu', weights_only=True)['step'])" "$1" 2>/dev/null || echo '?'; }
copy() { cp "$1" "$2.tmp" && mv "$2.tmp" "$2" || { rm -f "$2.tmp"; echo "FAILED to copy $1 to $2" >&2; exit 1; }; }   # checkpoint.pt is written atomically; so is its copy
case "${1:-}" in
  save)
    [ -d results ] || { echo "nothing to carry (no results/ folder)"; exit 0; }
    find results -name checkpoint.pt -print0 | while IFS= read -r -d '' f; do
      c="carry/$f"; mkdir -p "$(dirname "$c")"
      if [ -e "$c" ] && [ "$(step "$c")" != '?' ] && [ "$(step "$f")" != '?' ] && [ "$(step "$c")" -gt "$(step "$f")" ]; then
        echo "NOT carried $f (step $(step "$f")): the carried copy is further on (step $(step "$c")); run restore first" >&2; continue
      fi
      copy "$f" "$c"; echo "carried $f (step $(step "$c"), $(du -h "$c" | cut -f1))"
    done ;;
  restore)
    [ -d carry ] || { echo "nothing carried (no carry/ folder)"; exit 0; }
    find carry -name checkpoint.pt -print0 | while IFS= read -r -d '' c; do
      f=${c#carry/}
      if [ -e "$f" ]; then echo "kept $f (step $(step "$f")); the carried copy (step $(step "$c")) stays in carry/" >&2
      else mkdir -p "$(dirname "$f")"; copy "$c" "$f"; echo "restored $f (step $(step "$f"))"; fi
    done ;;
  list)
    n=0; [ -d carry ] && n=$(find carry -name checkpoint.pt | wc -l)
    [ "$n" -gt 0 ] || { echo "nothing carried"; exit 0; }
    find carry -name checkpoint.pt -print0 | while IFS= read -r -d '' c; do echo "$c step $(step "$c") $(du -h "$c" | cut -f1)"; done ;;
  *) echo "usage: bash tools/carry.sh save|restore|list"; exit 2 ;;
esac
