"""The static docs as a reader sees them: a chapter page opened from disk, without internet, in headless Chromium.

Checks that the equations are typeset by the MathJax copied into the docs (no raw `$\\hat s$` TeX left), that no
`In [ ]:` prompts show, and that the page links to the previous and next chapter and to the contents. Skips when
Chromium is not installed; `make docs-check` (run by CI) installs it from Debian first, so CI never skips it.
"""
import os
import re
import shutil
import subprocess
from html.parser import HTMLParser

import pytest

import render_docs

CHROMIUM = next((shutil.which(n) for n in ('chromium', 'chromium-browser', 'google-chrome') if shutil.which(n)), None)
REQUIRED = os.environ.get('MAC_DOCS_CHECK') == '1'  # set by `make docs-check` (CI): a missing browser fails, not skips
pytestmark = [pytest.mark.skipif(CHROMIUM is None and not REQUIRED, reason='Chromium is not installed (apt-get install '
                                                                           'chromium, or `make docs-check`, which installs it)'),
              pytest.mark.xdist_group('docs')]  # under pytest-xdist: one worker renders the pages once
CHAPTER = '08_agent'  # a derivation chapter with inline ($...$) and display ($$...$$) math
PREV, NEXT = '07_rejection_sampling', '09_evaluation'
PAGES = {'index', PREV, CHAPTER, NEXT}  # the chapter, its neighbours, the contents
TEX = re.compile(r'\$[^$]*\\[A-Za-z]+|\\(hat|mathbf|mathbb|sum|frac|lambda|epsilon|psi)\b')  # TeX a reader should not see


def dom(page, tmp_path):
    "The page's DOM after its scripts ran: Chromium advances a virtual clock by 10 s (MathJax's typesetting)."
    assert CHROMIUM, 'MAC_DOCS_CHECK=1 needs Chromium on PATH (chromium)'
    r = subprocess.run([CHROMIUM, '--headless', '--no-sandbox', '--disable-gpu', '--no-first-run',
                        f'--user-data-dir={tmp_path / "chromium-profile"}', '--virtual-time-budget=10000',
                        '--dump-dom', page.as_uri()], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and '<body' in r.stdout, r.stderr[-2000:]
    return r.stdout


class _Text(HTMLParser):
    "Visible text of markdown cells (what a reader reads), and links with a rel attribute."
    def __init__(self):
        super().__init__(); self.depth = 0; self.hidden = 0; self.markdown = []; self.text = []; self.links = {}

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag in ('script', 'style'): self.hidden += 1
        if tag == 'a' and a.get('rel'): self.links[a['rel']] = a.get('href')
        if tag == 'div' and 'jp-RenderedMarkdown' in (a.get('class') or '').split(): self.depth = 1; self.markdown.append('')
        elif self.depth and tag not in ('br', 'img', 'hr', 'meta', 'input'): self.depth += 1

    def handle_endtag(self, tag):
        if tag in ('script', 'style'): self.hidden -= 1
        if self.depth and tag not in ('br', 'img', 'hr', 'meta', 'input'): self.depth -= 1

    def handle_data(self, data):
        if self.hidden: return
        self.text.append(data)
        if self.depth: self.markdown[-1] += data


def read(html):
    p = _Text(); p.feed(html)
    return p


def math_problems(html):
    "What a reader would see wrong with the page's math: empty list when every equation was typeset."
    sources = len(re.findall(r'<script type="math/tex', html))  # MathJax 2 keeps each equation's TeX in one
    typeset = len(re.findall(r'id="MathJax-Element-\d+-Frame"', html))  # and renders it next to it
    problems = []
    if sources < 10: problems.append(f'only {sources} equations found by MathJax (is MathJax loaded?)')
    if typeset != sources: problems.append(f'{typeset} of {sources} equations typeset')
    errors = re.findall(r'class="[^"]*\b(?:MathJax_Error|noError|merror)\b', html)
    if errors: problems.append(f'MathJax reported {len(errors)} TeX error(s)')
    raw = [m.group(0) for md in read(html).markdown for m in TEX.finditer(md)]
    if raw: problems.append(f'raw TeX in the text: {raw[:5]}')
    return problems


@pytest.fixture(scope='module')
def docs(tmp_path_factory):
    out = tmp_path_factory.mktemp('docs')
    render_docs.render_static(out, only=PAGES)
    return out


@pytest.fixture(scope='module')
def chapter(docs, tmp_path_factory):
    return dom(docs / f'{CHAPTER}.html', tmp_path_factory.mktemp('chromium'))


def test_math_typeset_offline(docs, chapter):
    assert math_problems(chapter) == []
    assert 'class="MathJax_Display"' in chapter  # $$...$$ display math as well as inline $...$
    page = (docs / f'{CHAPTER}.html').read_text()
    assert re.search(r'<script[^>]+src="mathjax/MathJax\.js', page)  # relative URL: works from disk and any server
    assert not re.search(r'<script[^>]+src="(https?:)?//', page)  # loads no script from the internet


def test_check_fails_without_mathjax(docs, tmp_path):
    "The check above is not vacuous: the same page with MathJax's URL pointing nowhere fails it."
    page = (docs / f'{CHAPTER}.html').read_text()
    broken = docs / 'broken.html'
    broken.write_text(page.replace('src="mathjax/MathJax.js', 'src="missing/MathJax.js'))
    problems = math_problems(dom(broken, tmp_path))
    assert problems and any('raw TeX' in p for p in problems), problems


def test_no_prompts(chapter):
    text = ''.join(read(chapter).text)
    assert 'In [' not in text.replace('\xa0', ' ') and 'Out[' not in text.replace('\xa0', ' ')


def test_navigation(docs, chapter):
    links = read(chapter).links
    assert links == {'prev': f'{PREV}.html', 'contents': 'index.html', 'next': f'{NEXT}.html'}, links
    assert all((docs / href).exists() for href in links.values())
    index = read((docs / 'index.html').read_text())
    assert index.links.get('next') == '00_core.html' and 'prev' not in index.links
