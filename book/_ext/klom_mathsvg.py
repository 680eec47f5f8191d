"""Math rendered at build time, so the book reads the same without a network: every ``$...$``
and ``$$...$$`` becomes an SVG image (matplotlib's mathtext, Computer Modern fonts) embedded in
the page, instead of MathJax loaded from a CDN. Loaded by _config.yml
(``sphinx.local_extensions``) and selected with ``html_math_renderer: klom_mathsvg``."""

from __future__ import annotations

import base64
import functools
import io
import re
from html import escape

from docutils import nodes
from sphinx.util import logging

# mathtext spellings of the few commands it lacks (\text{...} is done by TEXT)
REPLACE = {r"\lVert": r"\Vert", r"\rVert": r"\Vert", r"\bigl": "", r"\bigr": "",
           r"\Bigl": "", r"\Bigr": ""}
TEXT = re.compile(r"\\text\{([^{}]*)\}")
SIZE = 13.0  # points: Computer Modern at about the size of the body text
logger = logging.getLogger(__name__)


def mathtext_source(tex: str) -> str:
    """``tex`` in the dialect of matplotlib's mathtext, on one line."""
    for old, new in REPLACE.items():
        tex = tex.replace(old, new)
    tex = TEXT.sub(lambda m: r"\mathrm{" + m.group(1).replace(" ", r"\ ") + "}", tex)
    return " ".join(tex.split())


@functools.lru_cache(maxsize=None)
def render(tex: str) -> tuple[str, float, float, float]:
    """(base64 SVG, width, height, depth below the baseline; in points) of ``tex``."""
    import matplotlib
    from matplotlib import mathtext
    from matplotlib.font_manager import FontProperties

    tex = mathtext_source(tex)
    buf = io.BytesIO()
    with matplotlib.rc_context({"mathtext.fontset": "cm", "svg.fonttype": "path"}):
        depth = mathtext.math_to_image(f"${tex}$", buf, prop=FontProperties(size=SIZE),
                                       format="svg")
    svg = buf.getvalue().decode()
    width = float(re.search(r'width="([\d.]+)pt"', svg).group(1))
    height = float(re.search(r'height="([\d.]+)pt"', svg).group(1))
    return base64.b64encode(svg.encode()).decode(), width, height, float(depth or 0.0)


def _img(tex: str, block: bool) -> str:
    try:
        data, width, height, depth = render(tex)
    except ValueError as err:  # a command mathtext does not know: say which, show the source
        logger.warning(f"math not rendered ({str(err).strip().splitlines()[0]}): {tex}")
        return f"<code>{escape(tex)}</code>"
    align = "" if block else f"vertical-align:-{depth:.2f}pt;"
    return (f'<img class="klom-math" src="data:image/svg+xml;base64,{data}" '
            f'alt="{escape(tex)}" style="{align}width:{width:.2f}pt;height:{height:.2f}pt">')


def visit_math(self, node):
    self.body.append(f'<span class="klom-math-inline notranslate">{_img(node.astext(), False)}</span>')
    raise nodes.SkipNode


def visit_math_block(self, node):
    tex = node.astext().strip().rstrip(".,").strip()
    self.body.append(f'<div class="klom-math-block notranslate" style="text-align:center;margin:0.8em 0">'
                     f'{_img(tex, True)}</div>')
    raise nodes.SkipNode


def setup(app):
    app.add_html_math_renderer("klom_mathsvg", (visit_math, None), (visit_math_block, None))
    return {"parallel_read_safe": True}
