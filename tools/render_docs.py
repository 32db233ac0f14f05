"""Render the documentation into docs/ (nbdev's doc_path).

Where `quarto` is on PATH this runs `nbdev_docs` (the full nbdev site). Elsewhere (Quarto cannot be installed on
machines without internet) it renders each notebook, with its committed outputs and without executing it, to
static HTML with nbconvert: docs/<notebook>.html, and docs/index.html (the index notebook plus a map of chapters).
Each page links to the previous and next chapter and to the contents. The equations are typeset by a copy of
MathJax 2 written into docs/mathjax/ (from the `jupyter-server-mathjax` package, a dev dependency), so the pages
need no internet: open docs/index.html from disk or serve docs/ from any web server.

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
from jinja2 import DictLoader
from nbconvert import HTMLExporter

from nbtools import NBS, ROOT, directives, echo_false, notebooks, strip_directives, title

MATHJAX_DIR = 'mathjax'  # docs/mathjax/: the local MathJax, referenced from the pages by a relative URL
MATHJAX_URL = f'{MATHJAX_DIR}/MathJax.js?config=TeX-AMS-MML_HTMLorMML-full,Safe'  # the configuration Jupyter uses
# The page template: nbconvert's `lab` one, with two changes for reading offline. (1) jupyter-server-mathjax ships
# MathJax's STIX-Web fonts only (MathJax 2 defaults to its TeX fonts): use those, never fonts installed on the
# reader's machine, so the pages look the same everywhere; this is merged with nbconvert's own MathJax configuration
# ($...$ and $$...$$ delimiters, AMS equation numbers). (2) No require.js from a CDN: only widget and JavaScript
# outputs need it, and the notebooks have none.
TEMPLATE = """{%- extends 'index.html.j2' -%}
{%- block html_head_js_requirejs -%}{%- endblock html_head_js_requirejs -%}
{%- block html_head_js_mathjax -%}
{{ super() }}
<script type="text/x-mathjax-config">
MathJax.Hub.Config({"HTML-CSS": {availableFonts: [], preferredFont: null, webFont: "STIX-Web", imageFont: null}});
</script>
{%- endblock html_head_js_mathjax -%}
"""
# Parts of the package the pages never load, left out of docs/ (5 of its 12 MB): the SVG renderer (the configuration
# renders with HTML-CSS) and the menu's translations (MathJax's locale stays English unless a reader picks another).
_MATHJAX_SKIP = ('jax/output/SVG', 'localization')
NAV_STYLE = ('<style>nav.mac-nav{display:flex;gap:1.5em;justify-content:space-between;margin:.5em 0 1em;padding:.5em 0;'
             'border-bottom:1px solid #ddd;font-family:system-ui,sans-serif;font-size:.95em}nav.mac-nav.bottom{border-bottom:0;'
             'border-top:1px solid #ddd;margin-top:2em}nav.mac-nav a{text-decoration:none}nav.mac-nav span{flex:1}'
             'nav.mac-nav .next{text-align:right}nav.mac-nav .contents{text-align:center}</style>\n')


def _public(nb):
    "Drop `#| hide` cells and strip nbdev directive lines, as nbdev's docs do; `#| echo: false` cells keep only outputs."
    nb = copy.deepcopy(nb)
    cells = []
    for c in nb.cells:
        ds = directives(c.source)
        if 'hide' in ds or 'default_exp' in ds: continue
        if c.cell_type == 'code':
            if echo_false(c.source):
                c.source = ''
                c.metadata['transient'] = {'remove_source': True}  # nbconvert's templates then omit the input area
            else: c.source = strip_directives(c.source)
        cells.append(c)
    nb.cells = cells
    return nb


def _page(path):
    return 'index.html' if path.name == 'index.ipynb' else str(path.relative_to(NBS).with_suffix('.html')).replace('/', '__')


def mathjax_source():
    "The folder of MathJax's static files inside the `jupyter-server-mathjax` package."
    try: import jupyter_server_mathjax
    except ImportError as e:
        raise SystemExit('render_docs: the docs need a local MathJax from the package jupyter-server-mathjax '
                         "(in mac's dev extra): run `make setup`, or `pip install jupyter-server-mathjax`") from e
    return Path(jupyter_server_mathjax.__file__).parent / 'static'


def copy_mathjax(out: Path):
    "Copy MathJax into out/mathjax/ (what the pages load; anew each time, so a stale copy never lingers)."
    src, dst = mathjax_source(), out / MATHJAX_DIR
    if dst.exists(): shutil.rmtree(dst)
    skip = {src / s for s in _MATHJAX_SKIP}
    shutil.copytree(src, dst, ignore=lambda d, names: [n for n in names if Path(d) / n in skip])
    return dst


def _nav(nbs, i, where):
    "Previous / contents / next links for page i of nbs (reading order)."
    def link(j, rel, arrow):
        if j < 0 or j >= len(nbs): return ''
        name, label = _page(nbs[j]), html.escape(title(nbs[j])[0] if nbs[j].exists() else 'Contents')
        return f'<a href="{name}" rel="{rel}">{arrow[0]}{label}{arrow[1]}</a>'
    contents = '' if nbs[i].name == 'index.ipynb' else '<a href="index.html" rel="contents">Contents</a>'
    return (f'<nav class="mac-nav {where}"><span class="prev">{link(i - 1, "prev", ("&larr; ", ""))}</span>'
            f'<span class="contents">{contents}</span>'
            f'<span class="next">{link(i + 1, "next", ("", " &rarr;"))}</span></nav>')


def render_static(out: Path, only=None):
    "Write the pages (all, or those of the notebooks whose stems are in `only`) and MathJax into out/."
    out.mkdir(parents=True, exist_ok=True)
    copy_mathjax(out)
    # no `In [ ]:` / `Out[ ]:` prompts: the pages are read, not run
    exporter = HTMLExporter(template_name='lab', template_file='mac_docs.html.j2', mathjax_url=MATHJAX_URL,
                            extra_loaders=[DictLoader({'mac_docs.html.j2': TEMPLATE})],
                            exclude_input_prompt=True, exclude_output_prompt=True)
    nbs = notebooks()
    if not any(p.name == 'index.ipynb' for p in nbs): nbs = [NBS / 'index.ipynb'] + nbs  # a generated contents page
    toc = ''.join(f'<li><a href="{_page(p)}">{html.escape(title(p)[0])}</a> &mdash; {html.escape(title(p)[1])}</li>'
                  for p in nbs if p.name != 'index.ipynb')
    chapters = f'<nav style="margin:1em 0"><h2>Chapters, in reading order</h2><ol>{toc}</ol></nav>'
    written = []
    for i, p in enumerate(nbs):
        if only is not None and p.stem not in only: continue
        if p.exists():
            nb = _public(nbformat.read(p, as_version=4))
            nb.metadata['title'] = title(p)[0]  # the browser tab's title (nbconvert's default: "Notebook")
            body, _ = exporter.from_notebook_node(nb)
        else: body = '<html><head><meta charset="utf-8"><title>Contents</title></head><body></body></html>'
        top = _nav(nbs, i, 'top') + (chapters if p.name == 'index.ipynb' else '')
        body = _inject(body, top, _nav(nbs, i, 'bottom'), NAV_STYLE)
        (out / _page(p)).write_text(body, encoding='utf-8')
        written.append(out / _page(p))
    return written


def _inject(page, top, bottom='', head=''):
    "Put `head` at the end of <head>, `top` right after the opening <body ...> tag and `bottom` before </body>."
    if head: i = page.find('</head>'); page = page[:i] + head + page[i:]
    i = page.find('<body'); j = page.find('>', i) + 1
    page = page[:j] + top + page[j:]
    k = page.rfind('</body>')
    return page[:k] + bottom + page[k:]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--out', type=Path, default=ROOT / 'docs')
    ap.add_argument('--static', action='store_true', help='static HTML even where quarto exists')
    a = ap.parse_args(argv)
    if shutil.which('quarto') and not a.static:
        print('quarto found: running nbdev_docs'); return subprocess.call(['nbdev_docs'], cwd=ROOT)
    print('quarto not found: rendering notebooks to static HTML with nbconvert')
    for f in render_static(a.out): print(f'  wrote {f}')
    print(f'  wrote {a.out / MATHJAX_DIR}/ (MathJax, so the equations render offline)')
    return 0


if __name__ == '__main__':
    sys.exit(main())
