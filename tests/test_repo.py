"""Repository hygiene that notebooks cannot check: jupytext pairs, the generated README, the docs command, config."""
import configparser
import re
import subprocess

import make_readme
import pair
import render_docs
from conftest import ROOT


def test_jupytext_pairs_in_sync():
    assert pair.main(['--check']) == 0, 'nbs_py/ is out of sync with nbs/: run `make pair`'


def test_readme_generated_from_index():
    assert make_readme.main(['--check']) == 0, 'README.md is stale: run `make readme`'


def _outputs(nb) -> list[str]:
    "The markdown every code cell displays (the results table); streams are left out, since warnings vary by machine."
    return [''.join(o['data']['text/markdown']) for c in nb.cells if c.cell_type == 'code' for o in c.get('outputs', [])
            if 'text/markdown' in o.get('data', {})]


def test_index_shows_current_results():
    "The contents page's committed outputs (the README's results table) are what its cells compute from today's results/."
    import nbformat
    from nbclient import NotebookClient
    nb = nbformat.read(ROOT / 'nbs' / 'index.ipynb', as_version=4)
    shown = _outputs(nb)
    assert shown, 'nbs/index.ipynb shows no results table: run `make readme`'
    NotebookClient(nb, timeout=300, resources={'metadata': {'path': str(ROOT / 'nbs')}}).execute()
    assert _outputs(nb) == shown, 'nbs/index.ipynb shows results older than the files in results/: run `make readme`'


def test_readme_quick_start_is_two_commands():
    text = (ROOT / 'README.md').read_text()
    block = text.split('## Quick start', 1)[1].split('```bash', 1)[1].split('```', 1)[0]
    cmds = [l.split('#')[0].strip() for l in block.strip().splitlines() if l.split('#')[0].strip()]
    assert cmds == ['make main', 'make test'], cmds
    ci = (ROOT / '.ci' / 'run').read_text()
    assert '\nmake test' in ci, '.ci/run must call the README test command literally'


def test_docs_render_static(tmp_path):
    written = render_docs.render_static(tmp_path)
    names = {p.name for p in written}
    assert 'index.html' in names and {'00_core.html', '01_flow_matching.html'} <= names
    index = (tmp_path / 'index.html').read_text()
    assert index.index('00_core.html') < index.index('01_flow_matching.html')  # chapters linked in reading order
    assert '#| export' not in (tmp_path / '01_flow_matching.html').read_text()  # nbdev directives stripped


def test_settings_ini():
    cfg = configparser.ConfigParser(delimiters=['=']); cfg.read(ROOT / 'settings.ini')
    d = cfg['DEFAULT']
    assert (d['lib_path'], d['nbs_path'], d['doc_path'], d['recursive']) == ('mac', 'nbs', 'docs', 'True')
    assert set(d['tst_flags'].split()) == {'slow', 'notest'}


def test_console_scripts_installed():
    cfg = configparser.ConfigParser(delimiters=['=']); cfg.read(ROOT / 'settings.ini')
    for entry in cfg['DEFAULT']['console_scripts'].split():
        name = entry.split('=')[0]
        r = subprocess.run([str(ROOT / '.venv' / 'bin' / name) if (ROOT / '.venv').exists() else name, '--help'],
                           capture_output=True, text=True, timeout=120)
        assert r.returncode == 0 and 'usage' in r.stdout, (name, r.stderr)


def test_no_undefined_names():
    """Every name the package, its tools and its tests use is defined, and every name they import is used (pyflakes). Paths
    that only a GPU reaches are never run by the tests here, so a name left undefined by a refactor would otherwise surface
    only on a GPU machine. An import kept for its side effect (`ogbench` registers its environments) says `# noqa: F401`."""
    import ast
    from pyflakes import checker, messages
    bad = (messages.UndefinedName, messages.UndefinedLocal, messages.UndefinedExport, messages.UnusedImport)
    found = []
    for d in ('mac', 'tools', 'tests'):
        for p in sorted((ROOT / d).rglob('*.py')):
            text = p.read_text(); lines = text.splitlines()
            found += [str(m) for m in checker.Checker(ast.parse(text), str(p.relative_to(ROOT))).messages
                      if isinstance(m, bad) and not (isinstance(m, messages.UnusedImport) and re.search(r'#\s*noqa(?!:)|#\s*noqa:.*F401', lines[m.lineno - 1]))]
    assert not found, 'undefined names or unused imports (edit the notebook, then nbdev_export):\n' + '\n'.join(found)
