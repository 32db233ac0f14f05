"""Render the documentation into docs/ (nbdev's doc_path).

Where `quarto` is on PATH this runs `nbdev_docs` (the full nbdev site). Elsewhere (Quarto cannot be installed on
machines without internet) it renders each notebook, with its committed outputs and without executing it, to
static HTML with nbconvert: docs/<notebook>.html, and docs/index.html (the index notebook plus a map of chapters).

  python tools/render_docs.py [--out DIR] [--static]
"""
import argparse
import copy
import html
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
from nbconvert import HTMLExporter

from nbtools import NBS, ROOT, directives, echo_false, notebooks, strip_directives, title


def _public(nb):
    "Drop `#| hide` cells and strip nbdev directive lines, as nbdev's docs do."
    nb = copy.deepcopy(nb)
    cells = []
    for c in nb.cells:
        ds = directives(c.source)
        if 'hide' in ds or 'default_exp' in ds: continue
        if c.cell_type == 'code': c.source = '' if echo_false(c.source) else strip_directives(c.source)
        cells.append(c)
    nb.cells = cells
    return nb


def _page(path):
    return 'index.html' if path.name == 'index.ipynb' else str(path.relative_to(NBS).with_suffix('.html')).replace('/', '__')


def render_static(out: Path):
    out.mkdir(parents=True, exist_ok=True)
    exporter = HTMLExporter(template_name='lab')
    nbs = notebooks()
    toc = ''.join(f'<li><a href="{_page(p)}">{html.escape(title(p)[0])}</a> &mdash; {html.escape(title(p)[1])}</li>'
                  for p in nbs if p.name != 'index.ipynb')
    nav = f'<nav style="margin:1em 2em"><h2>Chapters, in reading order</h2><ol>{toc}</ol></nav>'
    written = []
    for p in nbs:
        body, _ = exporter.from_notebook_node(_public(nbformat.read(p, as_version=4)))
        if p.name == 'index.ipynb': body = _inject(body, nav)
        (out / _page(p)).write_text(body, encoding='utf-8')
        written.append(out / _page(p))
    if not any(p.name == 'index.ipynb' for p in nbs):
        (out / 'index.html').write_text(f'<html><body>{nav}</body></html>', encoding='utf-8'); written.append(out / 'index.html')
    return written


def _inject(page, nav):
    "Put the chapter map right after the opening <body ...> tag."
    i = page.find('<body'); j = page.find('>', i) + 1
    return page[:j] + nav + page[j:]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--out', type=Path, default=ROOT / 'docs')
    ap.add_argument('--static', action='store_true', help='static HTML even where quarto exists')
    a = ap.parse_args(argv)
    if shutil.which('quarto') and not a.static:
        print('quarto found: running nbdev_docs'); return subprocess.call(['nbdev_docs'], cwd=ROOT)
    print('quarto not found: rendering notebooks to static HTML with nbconvert')
    for f in render_static(a.out): print(f'  wrote {f}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
