"""`report.html`: the Markdown report as one self-contained page that opens offline and prints.

The page is rendered from the very Markdown text `write_report` writes to `report.md` (Python-
Markdown, tables extension), so the two files can never disagree: there is one set of computed
tables and one text. A Jinja2 template adds the page around it (styles for screen and print, a
section index, the headline box), and every figure the Markdown links is embedded as a data URI,
so the file fetches nothing: no external `src` or `href`, no script. Raw HTML in the Markdown
(which could only come from stored strings such as a failure reason) is escaped, not passed on.
"""

from __future__ import annotations

import base64
import re
from pathlib import Path

import markdown
from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup

from pybench import __version__
from pybench.errors import writing

HTML_FILE = "report.html"
TEMPLATES = Path(__file__).parent / "templates"
MIME = {".png": "image/png", ".svg": "image/svg+xml"}
IMG_SRC = re.compile(r'(<img\b[^>]*\bsrc=")([^"]+)(")')
FILE_LINK = re.compile(r'<a href="(?!#)([^"]*)">(.*?)</a>')
H2 = re.compile(r'<h2 id="([^"]+)">(.*?)</h2>')


def markdown_to_html(text: str) -> str:
    md = markdown.Markdown(extensions=["tables", "toc", "sane_lists"])
    # Stored strings must show as text: without these two, Python-Markdown passes raw HTML on.
    md.preprocessors.deregister("html_block")
    md.inlinePatterns.deregister("html")
    return md.convert(text)


def embed_images(html: str, folder: Path) -> str:
    """Every <img src="file"> whose file is in `folder` becomes a data URI."""
    def inline(match: re.Match) -> str:
        path = folder / match.group(2)
        if "://" in match.group(2) or not path.is_file() or path.suffix not in MIME:
            return match.group(0)
        data = base64.b64encode(path.read_bytes()).decode("ascii")
        return f"{match.group(1)}data:{MIME[path.suffix]};base64,{data}{match.group(3)}"
    # Links to files beside report.md (summary.csv) would break once the page is sent on its own:
    # the page names them instead of linking.
    html = FILE_LINK.sub(r'<code>\2</code> (beside this file)', html)
    return IMG_SRC.sub(inline, html)


def render_html(title: str, headline_md: str, body_md: str, figures: Path) -> str:
    body = embed_images(markdown_to_html(body_md), figures)
    headline = markdown_to_html(headline_md) if headline_md else ""
    sections = [{"id": "headline", "title": "Headline"}] if headline else []
    sections += [{"id": i, "title": re.sub(r"<[^>]+>", "", t)} for i, t in H2.findall(body)]
    environment = Environment(loader=FileSystemLoader(TEMPLATES),
                              autoescape=select_autoescape(["html", "j2"]))
    template = environment.get_template("report.html.j2")
    return template.render(title=title, headline=Markup(headline), body=Markup(body),
                           sections=sections, version=__version__)


def write_html(out: Path, title: str, headline_md: str, body_md: str) -> Path:
    path = out / HTML_FILE
    with writing(path):
        path.write_text(render_html(title, headline_md, body_md, out), encoding="utf-8")
    return path
