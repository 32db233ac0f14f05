"""Generate README.md from nbs/index.ipynb (hidden cells removed), as nbdev_readme would without Quarto.

  python tools/make_readme.py          # write README.md
  python tools/make_readme.py --check  # exit 1 when README.md is stale
"""
import sys

from nbtools import NBS, ROOT, directives, echo_false, load, strip_directives

HEADER = '<!-- Generated from nbs/index.ipynb by `make readme` (tools/make_readme.py). Edit the notebook, not this file. -->\n\n'


def _outputs(cell):
    out = []
    for o in cell.get('outputs', []):
        if o.get('output_type') == 'stream': out.append(''.join(o['text']))
        elif 'text/markdown' in o.get('data', {}): out.append(None); out.append(''.join(o['data']['text/markdown']))
        elif 'text/plain' in o.get('data', {}): out.append(''.join(o['data']['text/plain']))
    return out


def render(nb_path=NBS / 'index.ipynb'):
    "README text for a notebook: markdown as is, code in fenced blocks with their text outputs."
    parts = []
    for c in load(nb_path)['cells']:
        src = ''.join(c['source'])
        ds = directives(src)
        if 'hide' in ds or 'default_exp' in ds: continue
        if c['cell_type'] == 'markdown': parts.append(src.strip())
        elif c['cell_type'] == 'code':
            body = strip_directives(src).strip()
            if body and not echo_false(src): parts.append(f'```python\n{body}\n```')
            md = False
            for o in _outputs(c):
                if o is None: md = True; continue
                parts.append(o.strip() if md else f'```\n{o.rstrip()}\n```'); md = False
    return HEADER + '\n\n'.join(p for p in parts if p) + '\n'


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    text, readme = render(), ROOT / 'README.md'
    if '--check' in argv:
        if not readme.exists() or readme.read_text(encoding='utf-8') != text:
            print('README.md is stale: it must be generated from nbs/index.ipynb (run `make readme`)', file=sys.stderr)
            return 1
        print('README.md is up to date'); return 0
    readme.write_text(text, encoding='utf-8'); print('wrote README.md'); return 0


if __name__ == '__main__':
    sys.exit(main())
