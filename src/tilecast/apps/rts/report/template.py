"""HTML pieces of the RTS QC report: one self-contained page, no scripts, no external files.

Every function takes plain values and returns escaped HTML text; images arrive as PNG bytes
and are embedded as ``data:image/png;base64,`` URIs.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Sequence
from html import escape

__all__ = ["CSS", "check_list", "figure", "image", "page", "stat_cards", "table"]

CSS = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif;
       margin: 0 auto; max-width: 1180px; padding: 16px 24px 48px; color: #1d232a; }
h1 { font-size: 22px; margin: 4px 0 2px; }
h2 { font-size: 18px; margin: 28px 0 8px; border-bottom: 1px solid #d8dde3; padding-bottom: 3px; }
h3 { font-size: 15px; margin: 18px 0 6px; }
.sub { color: #59636e; margin: 0 0 12px; }
.checks { list-style: none; padding: 0; margin: 0; }
.checks li { padding: 5px 10px; margin: 3px 0; border-radius: 4px; border-left: 6px solid; }
.checks li.error { background: #fde8e8; border-color: #c81e1e; }
.checks li.warn { background: #fff6db; border-color: #d69e00; }
.checks li.info { background: #eaf2fb; border-color: #3f83c8; }
.checks li.ok { background: #e9f7ee; border-color: #2f9e5b; }
.checks li b { display: inline-block; min-width: 4.2em; }
.cards { display: grid; grid-template-columns: repeat(auto-fill, minmax(170px, 1fr)); gap: 8px; }
.card { border: 1px solid #d8dde3; border-radius: 6px; padding: 6px 10px; background: #fafbfc; }
.card .k { color: #59636e; font-size: 12px; }
.card .v { font-size: 19px; font-weight: 600; word-break: break-word; }
.card .d { color: #59636e; font-size: 12px; word-break: break-word; }
.card.error { background: #fde8e8; border-color: #c81e1e; }
.card.warn { background: #fff6db; border-color: #d69e00; }
table { border-collapse: collapse; margin: 6px 0; font-size: 13px; max-width: 100%; }
th, td { border: 1px solid #d8dde3; padding: 3px 8px; text-align: left; vertical-align: top;
         overflow-wrap: anywhere; }
th { background: #f1f3f5; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.error td { background: #fde8e8; }
tr.warn td { background: #fff6db; }
td code, p code { font-size: 12px; }
figure { margin: 8px 0 16px; }
figure img { max-width: 100%; height: auto; border: 1px solid #d8dde3; }
figcaption { color: #3a434d; font-size: 12.5px; margin-top: 3px; }
.chips { display: flex; flex-wrap: wrap; gap: 10px; }
.chips figure { width: 282px; margin: 0 0 6px; }
.hists { display: flex; flex-wrap: wrap; gap: 12px; }
.hists figure { margin: 0; }
.note { color: #59636e; }
.empty { padding: 10px 14px; background: #eaf2fb; border-radius: 4px; font-weight: 600; }
.missing { padding: 10px 14px; background: #fde8e8; border-radius: 4px; }
"""


def image(png: bytes, *, alt: str, width: int | None = None) -> str:
    """An ``<img>`` with the PNG embedded as a data URI."""
    data = base64.b64encode(png).decode("ascii")
    size = f' width="{width}"' if width else ""
    return f'<img src="data:image/png;base64,{data}" alt="{escape(alt)}"{size}>'


def figure(png: bytes, caption_html: str, *, alt: str, width: int | None = None) -> str:
    """A figure: the embedded image and a caption (``caption_html`` is already escaped)."""
    return f"<figure>{image(png, alt=alt, width=width)}<figcaption>{caption_html}</figcaption></figure>"


def check_list(checks: Iterable[tuple[str, str]]) -> str:
    """``(level, text)`` pairs as a coloured list; level is error, warn, info or ok."""
    items = [
        f'<li class="{escape(level)}"><b>{escape(level.upper())}</b> {escape(text)}</li>'
        for level, text in checks
    ]
    return '<ul class="checks">' + "".join(items) + "</ul>"


def stat_cards(cards: Iterable[tuple[str, str, str, str]]) -> str:
    """``(label, value, detail, level)`` tuples as a grid of cards (level '' or warn/error)."""
    parts = []
    for label, value, detail, level in cards:
        cls = f"card {level}" if level else "card"
        extra = f'<div class="d">{escape(detail)}</div>' if detail else ""
        parts.append(
            f'<div class="{cls}"><div class="k">{escape(label)}</div>'
            f'<div class="v">{escape(value)}</div>{extra}</div>'
        )
    return '<div class="cards">' + "".join(parts) + "</div>"


def table(
    header: Sequence[str],
    rows: Iterable[Sequence[object]],
    *,
    numeric: Sequence[bool] | None = None,
    row_classes: Sequence[str] | None = None,
) -> str:
    """A table of plain values (escaped); ``numeric`` columns are right-aligned."""
    head = "".join(f"<th>{escape(str(h))}</th>" for h in header)
    body = []
    for i, row in enumerate(rows):
        cells = []
        for j, value in enumerate(row):
            cls = ' class="num"' if numeric and j < len(numeric) and numeric[j] else ""
            cells.append(f"<td{cls}>{escape(str(value))}</td>")
        row_cls = row_classes[i] if row_classes and i < len(row_classes) else ""
        attr = f' class="{row_cls}"' if row_cls else ""
        body.append(f"<tr{attr}>{''.join(cells)}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def page(title: str, body_html: str) -> str:
    """The whole document."""
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title><style>{CSS}</style></head>\n"
        f"<body>\n{body_html}\n</body></html>\n"
    )
