"""A report as a few kinds of blocks, rendered two ways: Markdown (report.md, images linked) and one
self-contained HTML file (report.html: images embedded as data URIs, formulas rendered to SVG with
matplotlib's mathtext, no script and nothing fetched from a network).

    sections = [Section("Best rules", [Table(["Rule", "Update"], [[Code("adam"), Formula(r"\\frac{m}{v}", "adam")]])])]
    markdown(title, sections, out_dir); html(title, sections)
"""
from __future__ import annotations

import base64
import html as _html
import io
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Union


@dataclass(frozen=True)
class Code:
    """Inline code: a rule's DSL text."""

    text: str


@dataclass(frozen=True)
class Formula:
    """A formula: LaTeX (math in Markdown, SVG in HTML) and the DSL text (the SVG's alt text)."""

    latex: str
    text: str


Cell = Union[str, Code, Formula]


@dataclass(frozen=True)
class Paragraph:
    text: str


@dataclass(frozen=True)
class Bullets:
    items: list[str]


@dataclass(frozen=True)
class Image:
    path: Path
    alt: str


@dataclass(frozen=True)
class Table:
    header: list[str]
    rows: list[list[Cell]]
    numeric: frozenset[int] = frozenset()  # right-aligned columns


@dataclass(frozen=True)
class Pre:
    text: str


@dataclass(frozen=True)
class Markdown:
    """Markdown made elsewhere (the study tables): paragraphs and pipe tables with `code` and **bold**."""

    text: str


Block = Union[Paragraph, Bullets, Image, Table, Pre, Markdown]


@dataclass
class Section:
    title: str
    blocks: list[Block] = field(default_factory=list)


# --- Markdown ---------------------------------------------------------------------------------------

def _md_cell(cell: Cell) -> str:
    if isinstance(cell, Formula):  # math as GitHub and most Markdown viewers render it
        return "$" + cell.latex.replace("|", "\\vert ") + "$"
    if isinstance(cell, Code):
        return "`" + cell.text.replace("|", "\\|") + "`"
    return cell.replace("|", "\\|")


def _md_block(block: Block, base: Path) -> str:
    if isinstance(block, Paragraph):
        return block.text
    if isinstance(block, Bullets):
        return "\n".join(f"- {item}" for item in block.items)
    if isinstance(block, Image):
        return f"![{block.alt}]({relative(block.path, base)})"
    if isinstance(block, Table):
        align = ["---:" if i in block.numeric else "---" for i in range(len(block.header))]
        rows = ["| " + " | ".join(block.header) + " |", "|" + "|".join(align) + "|"]
        rows += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in block.rows]
        return "\n".join(rows)
    if isinstance(block, Pre):
        return f"```text\n{block.text.rstrip()}\n```"
    return block.text.rstrip()


def relative(path: Path, base: Path) -> str:
    """path relative to base where it lies inside, else as given."""
    try:
        return Path(path).resolve().relative_to(base.resolve()).as_posix()
    except ValueError:
        return Path(path).as_posix()


def markdown(title: str, sections: list[Section], base: Path) -> str:
    """The report as Markdown; images linked relative to `base` (the folder report.md is written to)."""
    parts = [f"# {title}", ""]
    for section in sections:
        parts += [f"## {section.title}", ""]
        for block in section.blocks:
            parts += [_md_block(block, base), ""]
    return "\n".join(parts)


# --- HTML -------------------------------------------------------------------------------------------

_STYLE = """
body { font-family: "DejaVu Sans", Helvetica, Arial, sans-serif; max-width: 1200px; margin: 2em auto;
       padding: 0 1em; color: #222; line-height: 1.45; }
h1 { font-size: 1.7em; border-bottom: 2px solid #ccc; padding-bottom: .2em; }
h2 { font-size: 1.3em; margin-top: 1.8em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: .8em 0; font-size: .92em; }
th, td { padding: .3em .7em; border-bottom: 1px solid #e3e3e3; vertical-align: middle; text-align: left; }
th { background: #f3f3f3; border-bottom: 2px solid #bbb; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
code { font-family: "DejaVu Sans Mono", Menlo, monospace; font-size: .92em; background: #f5f5f5;
       padding: 0 .2em; border-radius: 3px; }
pre { background: #f7f7f7; padding: .8em; overflow-x: auto; font-size: .85em; }
img.plot { max-width: 100%; height: auto; border: 1px solid #eee; }
img.formula { vertical-align: middle; }
"""


@lru_cache(maxsize=4096)
def formula_svg(latex: str) -> str | None:
    """A data URI of the formula rendered to SVG by matplotlib's mathtext; None where mathtext cannot
    parse it (the caller shows the DSL text instead)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import mathtext
    from matplotlib.font_manager import FontProperties

    buffer = io.BytesIO()
    try:
        mathtext.math_to_image(f"${latex}$", buffer, prop=FontProperties(size=13), dpi=72, format="svg")
    except (ValueError, RuntimeError):
        return None
    return "data:image/svg+xml;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _data_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(Path(path).read_bytes()).decode("ascii")


def _html_cell(cell: Cell) -> str:
    if isinstance(cell, Code):
        return f"<code>{_html.escape(cell.text)}</code>"
    if isinstance(cell, Formula):
        uri = formula_svg(cell.latex)
        if uri is None:
            return f"<code>{_html.escape(cell.text)}</code>"
        return f'<img class="formula" src="{uri}" alt="{_html.escape(cell.text)}" title="{_html.escape(cell.text)}">'
    return _inline(cell)


def _inline(text: str) -> str:
    """Escaped text with Markdown's `code` and **bold**."""
    out = []
    for i, part in enumerate(re.split(r"`([^`]*)`", text)):
        if i % 2:
            out.append(f"<code>{_html.escape(part)}</code>")
        else:
            out.append(re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", _html.escape(part)))
    return "".join(out)


def _html_table(header: list[str], rows: list[list[Cell]], numeric: frozenset[int]) -> str:
    cls = lambda i: ' class="num"' if i in numeric else ""  # noqa: E731
    head = "".join(f"<th{cls(i)}>{_inline(h)}</th>" for i, h in enumerate(header))
    body = "".join("<tr>" + "".join(f"<td{cls(i)}>{_html_cell(c)}</td>" for i, c in enumerate(row)) + "</tr>"
                   for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _markdown_html(text: str) -> str:
    """Paragraphs and pipe tables of Markdown (what the study tables use) as HTML."""
    out, table = [], []
    for line in text.splitlines() + [""]:
        if line.startswith("|"):
            table.append([c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]])
            continue
        if table:
            align = table[1] if len(table) > 1 and all(set(c) <= set(":-") for c in table[1]) else None
            numeric = frozenset(i for i, c in enumerate(align or []) if c.endswith(":"))
            out.append(_html_table(table[0], table[2:] if align else table[1:], numeric))
            table = []
        if line.strip():
            out.append(f"<p>{_inline(line)}</p>")
    return "\n".join(out)


def _html_block(block: Block) -> str:
    if isinstance(block, Paragraph):
        return f"<p>{_inline(block.text)}</p>"
    if isinstance(block, Bullets):
        return "<ul>" + "".join(f"<li>{_inline(item)}</li>" for item in block.items) + "</ul>"
    if isinstance(block, Image):
        return f'<p><img class="plot" src="{_data_uri(block.path)}" alt="{_html.escape(block.alt)}"></p>'
    if isinstance(block, Table):
        return _html_table(block.header, block.rows, block.numeric)
    if isinstance(block, Pre):
        return f"<pre>{_html.escape(block.text)}</pre>"
    return _markdown_html(block.text)


def html(title: str, sections: list[Section]) -> str:
    """The report as one self-contained HTML page."""
    parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
             f"<title>{_html.escape(title)}</title><style>{_STYLE}</style></head><body>",
             f"<h1>{_html.escape(title)}</h1>"]
    for section in sections:
        parts.append(f"<h2>{_html.escape(section.title)}</h2>")
        parts += [_html_block(block) for block in section.blocks]
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"
