"""docs/dsl.md is the reference of every public name, and its code runs (issue 12, item 7).

The public names are computed from the package when the test runs, so a name added to
``tilevm`` (a builtin registered in ``tilevm/frontend/builtins``, a class re-exported from
``tilevm/__init__.py``) fails here until docs/dsl.md documents it.

An *entry* of docs/dsl.md names ``tv.NAME`` (in backticks) on a heading line, or in the first
cell of a table row; its body runs from there to the next heading. A builtin's entry quotes the
builtin's docstring (its contract) in a ``>`` block and shows a call of it. A host-side name (a
row of the table under "Host-side names") may instead link the page that documents it.
"""

from __future__ import annotations

import inspect
import re
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from markdown_code import run_python_blocks

import tilevm
from tilevm.frontend.builtins import definition_of

DOCS = Path(__file__).resolve().parents[1] / "docs"
DSL = DOCS / "dsl.md"
HOST_SIDE_HEADING = "## Host-side names"

# `tv.NAME`, `@tv.NAME`, `tv.NAME(args)`, `tv.NAME[...]`: a name in backticks.
NAMED = re.compile(r"`@?tv\.([A-Za-z_]\w*)")


def public_names() -> set[str]:
    """Every name a user reaches as ``tilevm.NAME``: ``__all__`` and the public attributes kept
    out of it so as not to shadow Python's builtins under ``import *`` (``tv.range``,
    ``tv.compile``…). Submodules are not names of the API."""
    names = set(tilevm.__all__)
    names |= {name for name, value in vars(tilevm).items()
              if not name.startswith("_") and not isinstance(value, ModuleType)}
    return names


def builtin_names() -> set[str]:
    """The public names that are DSL builtins (``tv.load``…), as the registry defines them."""
    return {name for name in public_names() if definition_of(getattr(tilevm, name)) is not None}


@dataclass
class Entry:
    """One entry of a page: the line that names it (1-based), the names it documents, the lines
    of its body (the naming line included) and whether it is a row of the host-side table."""

    line: int
    names: list[str]
    body: list[str]
    host_side: bool

    @property
    def text(self) -> str:
        return "\n".join(self.body)

    @property
    def quote(self) -> str:
        """The ``>`` block of the entry, joined into one line."""
        quoted = [line[1:] for line in self.body if line.startswith(">")]
        return " ".join(" ".join(quoted).split())


def entries(text: str) -> list[Entry]:
    """The entries of a markdown page (headings inside ``` fences are code, not headings)."""
    found: list[Entry] = []
    current: Entry | None = None
    in_fence = False
    section = ""
    for number, line in enumerate(text.splitlines(), start=1):
        if line.startswith("```"):
            in_fence = not in_fence
        heading = not in_fence and line.startswith("#")
        if heading:
            current = None
            if line.startswith("## "):
                section = line.strip()
        row_names = (NAMED.findall(line.split("|")[1])
                     if not in_fence and line.startswith("|") else [])
        names = NAMED.findall(line) if heading else row_names
        if names:
            entry = Entry(number, names, [], section == HOST_SIDE_HEADING and not heading)
            found.append(entry)
            # A table row is an entry of one line; a heading's body runs to the next heading.
            current = entry if heading else None
            entry.body.append(line)
        elif current is not None:
            current.body.append(line)
    return found


def documented(text: str) -> dict[str, list[Entry]]:
    """Name → the entries that name it."""
    by_name: dict[str, list[Entry]] = {}
    for entry in entries(text):
        for name in entry.names:
            by_name.setdefault(name, []).append(entry)
    return by_name


def normalized_docstring(function) -> str:
    """A builtin's docstring as docs/dsl.md quotes it: markdown code spans, ``tv.`` before the
    functions it refers to, one line."""
    doc = inspect.getdoc(function) or ""
    doc = re.sub(r":func:`~?(?:[\w.]*\.)?(\w+)`", r"`tv.\1`", doc)
    doc = re.sub(r":\w+:`~?([\w.]+)`", r"`\1`", doc)
    doc = doc.replace("``", "`")
    return " ".join(doc.split())


def first_sentence(text: str) -> str:
    match = re.match(r"(.+?[.;:])(\s|$)", text)
    return match.group(1) if match else text


def test_every_public_name_has_an_entry_in_dsl_md():
    by_name = documented(DSL.read_text())
    missing = sorted(public_names() - set(by_name))
    assert not missing, (
        f"public names of tilevm without an entry in {DSL.name} (a heading, or a row of a "
        f"reference table, naming `tv.NAME`): {', '.join(missing)}")
    # The converse: an entry names only what the package has (a renamed builtin leaves none).
    stale = sorted(set(by_name) - public_names())
    assert not stale, f"entries of {DSL.name} for names tilevm does not have: {stale}"


def test_host_side_entries_link_the_page_that_documents_them():
    linked = 0
    for entry in entries(DSL.read_text()):
        if not entry.host_side:
            continue
        for page, anchor in re.findall(r"\]\(([\w-]+\.md)(?:#([\w-]+))?\)", entry.text):
            linked += 1
            target = (DOCS / page).read_text()
            for name in entry.names:
                assert re.search(rf"\b(tv|tilevm)\.{name}\b", target), (
                    f"{DSL.name}:{entry.line}: tv.{name} points to {page}, which does not "
                    f"mention it")
            if anchor:
                anchors = {github_anchor(heading) for heading in
                           re.findall(r"^#+ (.*)$", target, flags=re.M)}
                assert anchor in anchors, f"{DSL.name}:{entry.line}: no #{anchor} in {page}"
    assert linked, f"{DSL.name} links no host-side name to its page"


def github_anchor(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces to dashes."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_every_builtin_entry_quotes_its_contract_and_shows_a_call():
    by_name = documented(DSL.read_text())
    problems = []
    for name in sorted(builtin_names()):
        own = [e for e in by_name.get(name, []) if not e.host_side and e.body[0].startswith("#")]
        if not own:
            problems.append(f"tv.{name}: no heading entry")
            continue
        entry = own[0]
        where = f"{DSL.name}:{entry.line}"
        # The contract: the quote is the docstring (or its leading part, whole sentences) of
        # one of the builtins the heading names (floor, ceil and abs share one entry).
        quote = entry.quote
        docstrings = [normalized_docstring(getattr(tilevm, n)) for n in entry.names
                      if n in builtin_names()]
        if not quote:
            problems.append(f"{where}: tv.{name} quotes no docstring (a `>` block)")
        elif not any(doc.startswith(quote) and len(quote) >= len(first_sentence(doc))
                     for doc in docstrings):
            problems.append(f"{where}: the quote of tv.{name} is not its docstring:\n"
                            f"  quoted:    {quote}\n  docstring: {docstrings[0]}")
        # The example: a call with arguments written out (not `tv.name(…)`), below the heading.
        body = "\n".join(entry.body[1:])
        if not re.search(rf"tv\.{name}\((?!\s*(\.\.\.|…)\s*\))", body):
            problems.append(f"{where}: the entry of tv.{name} shows no call `tv.{name}(...)`")
    assert not problems, "\n".join(problems)


def test_python_blocks_of_dsl_md_run():
    run_python_blocks(DSL, at_least=10)
