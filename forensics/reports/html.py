"""HTML building blocks of the report: one self-contained page (inline CSS, figures as ``data:`` URIs,
no script, no external link, font, stylesheet or image)."""

from __future__ import annotations

import html
import math
from dataclasses import dataclass

CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; margin: 0;
       color: #222; background: #fafafa; line-height: 1.45; }
header { background: #263238; color: #fff; padding: 18px 32px; }
header h1 { margin: 0 0 4px 0; font-size: 1.5em; }
header p { margin: 0; color: #cfd8dc; }
nav { padding: 8px 32px; background: #eceff1; font-size: 0.9em; }
nav a { margin-right: 14px; color: #37474f; text-decoration: none; }
main { padding: 8px 32px 40px 32px; max-width: 1280px; }
section { background: #fff; border: 1px solid #e0e0e0; border-radius: 6px; padding: 12px 20px; margin: 16px 0; }
h2 { margin: 4px 0 10px 0; font-size: 1.2em; color: #263238; }
h3 { font-size: 1.0em; margin: 14px 0 6px 0; color: #37474f; }
table { border-collapse: collapse; font-size: 0.88em; margin: 6px 0 10px 0; }
th, td { border: 1px solid #ddd; padding: 3px 8px; text-align: left; vertical-align: top; }
th { background: #f5f5f5; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
img.fig { max-width: 100%; height: auto; display: block; margin: 6px 0; }
p.note { color: #555; font-size: 0.88em; margin: 4px 0; }
p.warn { color: #b71c1c; font-weight: 600; }
.thumbs { display: flex; flex-wrap: wrap; gap: 8px; margin-bottom: 8px; }
figure.thumb { margin: 0; width: 132px; font-size: 0.72em; color: #444; word-break: break-all; }
figure.thumb img { display: block; max-width: 128px; max-height: 128px; border: 1px solid #ccc; }
"""


@dataclass
class Section:
    """One section of the report: anchor id, title and HTML body."""

    id: str
    title: str
    body: str


def esc(value) -> str:
    return html.escape(str(value), quote=True)


def fmt(value, digits: int = 4) -> str:
    """Numbers to text (``-`` for missing or NaN)."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return "-" if math.isnan(value) else f"{value:.{digits}f}"
    return str(value)


def table(header: list[str], rows: list[list], *, numeric_from: int = 1) -> str:
    """An HTML table; cells from column ``numeric_from`` on are right-aligned numbers."""
    head = "".join(f"<th>{esc(h)}</th>" for h in header)
    body = []
    for row in rows:
        cells = []
        for j, v in enumerate(row):
            cls = ' class="num"' if j >= numeric_from and isinstance(v, (int, float)) and not isinstance(v, bool) else ""
            cells.append(f"<td{cls}>{esc(fmt(v))}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def kv_table(items: list[tuple[str, object]]) -> str:
    """A two-column key/value table."""
    rows = "".join(f"<tr><th>{esc(k)}</th><td>{esc(fmt(v))}</td></tr>" for k, v in items)
    return f"<table><tbody>{rows}</tbody></table>"


def figure(uri: str, alt: str) -> str:
    return f'<img class="fig" src="{uri}" alt="{esc(alt)}">'


def note(text: str, *, warn: bool = False) -> str:
    return f'<p class="{"note warn" if warn else "note"}">{esc(text)}</p>'


def thumbs(items: list[tuple[str, str, str]]) -> str:
    """A row of thumbnails ``(data_uri, name, detail)``, captioned on two lines."""
    figs = "".join(
        f'<figure class="thumb"><img src="{uri}" alt="{esc(name)}"><figcaption>{esc(name)}<br>{esc(detail)}</figcaption></figure>'
        for uri, name, detail in items
    )
    return f'<div class="thumbs">{figs}</div>'


def page(title: str, subtitle: str, sections: list[Section]) -> str:
    """The whole HTML document."""
    nav = "".join(f'<a href="#{esc(s.id)}">{esc(s.title)}</a>' for s in sections)
    body = "".join(f'<section id="{esc(s.id)}"><h2>{esc(s.title)}</h2>{s.body}</section>' for s in sections)
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{esc(title)}</title>"
        f"<style>{CSS}</style></head><body><header><h1>{esc(title)}</h1><p>{esc(subtitle)}</p></header>"
        f"<nav>{nav}</nav><main>{body}</main></body></html>\n"
    )
