"""Helpers shared by the repo tools (not part of the `mac` package): find notebooks, read their directives."""
import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NBS = ROOT / 'nbs'
_directive = re.compile(r'^\s*#\|\s*(\w+)')


def notebooks(include_experiments=True):
    "Every notebook under nbs/, in reading order (index first, then by name)."
    nbs = sorted(p for p in NBS.rglob('*.ipynb') if '.ipynb_checkpoints' not in p.parts)
    if not include_experiments: nbs = [p for p in nbs if p.parent == NBS]
    return sorted(nbs, key=lambda p: (p.name != 'index.ipynb', str(p.relative_to(NBS))))


def directives(source):
    "The nbdev directives (`#| hide`, `#| export`, ...) on the first lines of a cell."
    out = []
    for line in source.splitlines():
        m = _directive.match(line)
        if not m: break
        out.append(m.group(1))
    return out


def echo_false(source):
    "True when a cell asks to show its outputs but not its source (`#| echo: false`)."
    for line in source.splitlines():
        if not _directive.match(line): break
        if re.match(r'^\s*#\|\s*echo:\s*false', line): return True
    return False


def strip_directives(source):
    "A cell's source without its leading `#|` directive lines."
    lines = source.splitlines()
    while lines and _directive.match(lines[0]): lines.pop(0)
    return '\n'.join(lines)


def load(path):
    return json.loads(Path(path).read_text(encoding='utf-8'))


def title(path):
    "The `# Title` and `> summary` of a notebook's first markdown cell."
    for c in load(path)['cells']:
        if c['cell_type'] != 'markdown': continue
        src = ''.join(c['source'])
        t = re.search(r'^#\s+(.+)$', src, re.M)
        s = re.search(r'^>\s*(.+)$', src, re.M)
        return (t.group(1).strip() if t else Path(path).stem), (s.group(1).strip() if s else '')
    return Path(path).stem, ''
