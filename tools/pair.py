"""Keep each nbs/X.ipynb paired with a percent-format script nbs_py/X.py (the .ipynb is the source of truth).

  python tools/pair.py --write   # regenerate every nbs_py/*.py from its notebook (and delete orphans)
  python tools/pair.py --check   # exit 1, naming the files, when a pair is out of sync
"""
import argparse
import sys

import jupytext

from nbtools import NBS, ROOT, notebooks

PY = ROOT / 'nbs_py'


def as_script(nb_path):
    "The percent-format text of a notebook, without volatile metadata (so any jupytext version writes the same)."
    nb = jupytext.read(nb_path)
    nb.metadata['jupytext'] = {'notebook_metadata_filter': '-all', 'cell_metadata_filter': '-all'}
    return jupytext.writes(nb, fmt='py:percent')


def pairs():
    return {PY / p.relative_to(NBS).with_suffix('.py'): p for p in notebooks()}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    g = ap.add_mutually_exclusive_group(required=True)
    g.add_argument('--write', action='store_true')
    g.add_argument('--check', action='store_true')
    a = ap.parse_args(argv)
    want = pairs()
    stale = [py for py, nb in want.items() if not py.exists() or py.read_text(encoding='utf-8') != as_script(nb)]
    orphans = [p for p in PY.rglob('*.py') if p not in want] if PY.exists() else []
    if a.write:
        newer = [py for py in stale if py.exists() and py.stat().st_mtime > want[py].stat().st_mtime]
        for py in newer:  # edited as text after the notebook: overwriting it would lose that edit
            print(f'skipped {py.relative_to(ROOT)}: it is newer than its notebook; bring the edit into the notebook first '
                  f'(jupytext --update --to ipynb {py.relative_to(ROOT)} -o {want[py].relative_to(ROOT)})', file=sys.stderr)
        for py in (p for p in stale if p not in newer):
            py.parent.mkdir(parents=True, exist_ok=True)
            py.write_text(as_script(want[py]), encoding='utf-8')
            print(f'wrote {py.relative_to(ROOT)}')
        for p in orphans:
            p.unlink(); print(f'removed orphan {p.relative_to(ROOT)}')
        return 0
    bad = [f'{p.relative_to(ROOT)} differs from its notebook' for p in stale]
    bad += [f'{p.relative_to(ROOT)} has no notebook in nbs/' for p in orphans]
    if bad:
        print('jupytext pairs out of sync (run `make pair`):\n  ' + '\n  '.join(bad), file=sys.stderr)
        return 1
    print(f'{len(want)} notebook/script pairs in sync')
    return 0


if __name__ == '__main__':
    sys.exit(main())
