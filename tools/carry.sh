#!/usr/bin/env bash
# Carry long runs' checkpoints across machines. A session here can end on one machine and the next start on a fresh
# one; what comes back is the committed tree plus, where it can be recovered, the uncommitted files that git does not
# ignore. Checkpoints are ignored (results/**/checkpoint*.pt: tens of MB each, never committed), so a fresh machine
# starts every unfinished run from step 0. This copies each run folder's checkpoint.pt to carry/<same path> (not
# ignored, never to be committed: add files by name, not with `git add -A`), and puts them back on a fresh machine.
#   bash tools/carry.sh save      # before a session ends (runs may keep writing: each copy is of a finished file)
#   bash tools/carry.sh restore   # at a session's start, before resuming: copies back where no checkpoint is
#   bash tools/carry.sh list      # what is carried, with each checkpoint's step
set -euo pipefail
cd "$(dirname "$0")/.."
step() { .venv/bin/python -c "import sys, torch; print(torch.load(sys.argv[1], map_location='cpu', weights_only=True)['step'])" "$1" 2>/dev/null || echo '?'; }
case "${1:-}" in
  save)
    find results -name checkpoint.pt | while read -r f; do
      mkdir -p "carry/$(dirname "$f")"; cp "$f" "carry/$f.tmp" && mv "carry/$f.tmp" "carry/$f"   # checkpoint.pt is written atomically; so is its copy
      echo "carried $f (step $(step "carry/$f"), $(du -h "carry/$f" | cut -f1))"
    done ;;
  restore)
    [ -d carry ] || { echo "nothing carried (no carry/ folder)"; exit 0; }
    find carry -name checkpoint.pt | while read -r c; do
      f=${c#carry/}
      if [ -e "$f" ]; then echo "kept $f (step $(step "$f")); carried copy at step $(step "$c") left in carry/"
      else mkdir -p "$(dirname "$f")"; cp "$c" "$f.tmp" && mv "$f.tmp" "$f"; echo "restored $f (step $(step "$f"))"; fi
    done ;;
  list) [ -d carry ] && find carry -name checkpoint.pt | while read -r c; do echo "$c step $(step "$c") $(du -h "$c" | cut -f1)"; done || echo "nothing carried" ;;
  *) echo "usage: bash tools/carry.sh save|restore|list"; exit 2 ;;
esac
