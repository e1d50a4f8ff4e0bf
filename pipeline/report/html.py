"""Minimal HTML building blocks: escaped tables and sections, one inline style sheet, no scripts."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1200px; color: #222; }
h1 { border-bottom: 2px solid #0072B2; padding-bottom: .2em; }
h2 { margin-top: 2em; color: #0072B2; }
table { border-collapse: collapse; margin: .5em 0 1.5em; font-size: 14px; }
th, td { border: 1px solid #ccc; padding: 4px 10px; text-align: right; }
th { background: #f0f4f8; }
td:first-child, th:first-child { text-align: left; }
.note { color: #666; font-size: 13px; }
.missing { color: #a33; }
figure { margin: 1em 0; }
figure img { max-width: 100%; border: 1px solid #ddd; }
figcaption { font-size: 13px; color: #444; }
.gallery { display: grid; grid-template-columns: repeat(auto-fill, minmax(520px, 1fr)); gap: 12px; }
"""


def cell(value: object, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and value != value):
        return "<td>–</td>"
    if isinstance(value, float):
        return f"<td>{value:.{digits}f}</td>"
    return f"<td>{escape(str(value))}</td>"


def table(header: Sequence[str], rows: Sequence[Sequence[object]], digits: int = 2) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(cell(v, digits) for v in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def figure(data_uri: str, caption: str, alt: str) -> str:
    return f'<figure><img src="{data_uri}" alt="{escape(alt)}"><figcaption>{escape(caption)}</figcaption></figure>'


def note(text: str, missing: bool = False) -> str:
    return f'<p class="note{" missing" if missing else ""}">{escape(text)}</p>'


def section(title: str, *parts: str) -> str:
    anchor = "".join(c if c.isalnum() else "-" for c in title.lower())
    return f'<section id="{anchor}"><h2>{escape(title)}</h2>{"".join(parts)}</section>'


def page(title: str, subtitle: str, sections: Sequence[str]) -> str:
    return (
        "<!DOCTYPE html>\n"
        f'<html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>'
        f"<style>{STYLE}</style></head><body><h1>{escape(title)}</h1>{note(subtitle)}"
        + "".join(sections)
        + "</body></html>\n"
    )
