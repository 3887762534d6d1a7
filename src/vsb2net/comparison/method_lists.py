"""The method lists that the README and docs/DATASETS.md show, from the method registry.

Each document holds a generated block between ``<!-- methods:start -->`` and ``<!-- methods:end -->``
(inline, inside a sentence); ``benchmarks/make_methods.py`` rewrites it with docs/METHODS.md, and
tests/test_results_doc.py checks that the committed blocks are what the registry gives.
"""
from __future__ import annotations

import textwrap

from ..models import METHODS, REFERENCE, variants

START, END = "<!-- methods:start -->", "<!-- methods:end -->"


def others_by_family() -> dict[str, list[str]]:
    """Family -> the registered methods other than the reference, in the registry's order."""
    out: dict[str, list[str]] = {}
    for name in dict.fromkeys(m for m, _ in variants().values()):
        if name != REFERENCE:
            out.setdefault(METHODS.get(name).family, []).append(f"`{name}`")
    return out


def readme_text() -> str:
    """The README's "and N other methods ..." part of its sentence on who the project is for."""
    groups = others_by_family()
    n = sum(len(v) for v in groups.values())
    return (f"{n} other methods trained the same way: "
            + ", ".join(f"{family} ({', '.join(names)})" for family, names in groups.items())
            + " ([docs/METHODS.md](docs/METHODS.md))")


def datasets_text() -> str:
    """docs/DATASETS.md's note on running another method than the reference."""
    names = [n for names in others_by_family().values() for n in names]
    return f"`--method NAME` runs another method ({', '.join(n.strip('`') for n in names)})"


def with_block(text: str, body: str, start: str = START, end: str = END, indent: str = "") -> str | None:
    """``text`` with ``body`` between its ``start`` and ``end`` markers, wrapped at 100 columns with
    ``indent`` on continued lines (None when it has no markers)."""
    if start not in text or end not in text:
        return None
    head, rest = text.split(start, 1)
    _, tail = rest.split(end, 1)
    column = len(head) - (head.rfind("\n") + 1) + len(start)
    wrapped = textwrap.fill(body, width=100, initial_indent="x" * column, subsequent_indent=indent,
                            break_on_hyphens=False, break_long_words=False)[column:]
    return head + start + wrapped + end + tail
