"""The book's MyST markup as the plain Markdown that Jupyter shows (for the exercise notebooks).

The book (Sphinx) renders a citation role as author and year linked to the bibliography; JupyterLab
and Colab show the role's raw text. `plain_markdown` rewrites each citation as a Markdown link to
the cited work itself, with the names and year from `book/references.bib`:

    {cite:p}`elhage2022toy`                     ([Elhage et al., 2022](https://...))
    {cite:t}`elhage2022toy`                     [Elhage et al. (2022)](https://...)
    {cite:p}`braun2025apd,hanni2024mathematical`  ([Braun et al., 2025](...); [Hänni et al., 2024](...))

Any other MyST role, directive or target is an error that names it: write that text in plain
Markdown (which the book and Jupyter both show), or teach this module to render it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

ROLE = re.compile(r"(?<!`)\{(?P<name>[^{}`\s]+)\}`(?P<content>[^`]*)`")
FENCE = re.compile(r"^ {0,3}(?P<fence>`{3,}|~{3,}|:{3,})(?P<info>.*)$")
TARGET = re.compile(r"^ {0,3}\((?P<label>[^()\s]+)\)=\s*$")
CITATION_ROLES = {"cite:p", "cite:t"}


class MystError(ValueError):
    """Markdown holds MyST markup that cannot be shown as plain Markdown (or cites an unknown work)."""


@dataclass(frozen=True)
class Work:
    """A bibliography entry, as a citation shows it."""

    key: str
    last_names: tuple[str, ...]
    year: str
    url: str | None

    def authors(self) -> str:
        """'Elhage', 'Elhage and Hume', or 'Elhage et al.' (the book's author-year style)."""
        if len(self.last_names) <= 2:
            return " and ".join(self.last_names)
        return f"{self.last_names[0]} et al."


def read_bibliography(path: Path) -> dict[str, Work]:
    """Every entry of the BibTeX file `path`, by key (parsed with pybtex, which the book build uses)."""
    from pybtex.database import parse_file
    from pybtex.richtext import Text

    works = {}
    for key, entry in parse_file(str(path), bib_format="bibtex").entries.items():
        people = entry.persons.get("author") or entry.persons.get("editor") or []
        last_names = tuple(Text.from_latex(" ".join(person.last_names)).render_as("text") for person in people)
        fields = entry.fields
        year = fields.get("year") or fields.get("date", "")[:4] or "n.d."
        url = fields.get("url")
        if url is None and fields.get("eprint") and fields.get("archiveprefix", "arXiv").lower() == "arxiv":
            url = f"https://arxiv.org/abs/{fields['eprint']}"
        if url is None and fields.get("doi"):
            url = f"https://doi.org/{fields['doi']}"
        works[key] = Work(key, last_names, year, url)
    return works


def citation(role: str, keys: str, bibliography: dict[str, Work]) -> str:
    """The Markdown for ``{role}`keys` ``: `cite:p` (parenthetical) or `cite:t` (textual), keys comma-separated."""
    works = []
    for key in (key.strip() for key in keys.split(",")):
        if key not in bibliography:
            raise MystError(f"{{{role}}}`{keys}` cites {key!r}, which is not in the bibliography")
        work = bibliography[key]
        if not work.last_names or work.url is None:
            raise MystError(f"{key!r} in the bibliography needs an author and a url (or an arXiv eprint or a doi)")
        works.append(work)
    if role == "cite:p":
        return "(" + "; ".join(f"[{work.authors()}, {work.year}]({work.url})" for work in works) + ")"
    links = [f"[{work.authors()} ({work.year})]({work.url})" for work in works]
    return links[0] if len(links) == 1 else ", ".join(links[:-1]) + " and " + links[-1]


def plain_markdown(source: str, bibliography: dict[str, Work]) -> str:
    """`source` (a markdown cell) with citations as links; raises MystError on any other MyST markup.

    Fenced code blocks are left as they are, and so is a role written inside inline code
    (``` ``{cite:p}`key` `` ```: its brace follows a backtick)."""
    out, fence = [], None
    for number, line in enumerate(source.split("\n"), start=1):
        opening = FENCE.match(line)
        if fence is not None:  # inside a code block: copy up to its closing fence
            if (
                opening
                and opening["fence"][0] == fence[0]
                and len(opening["fence"]) >= len(fence)
                and not opening["info"].strip()
            ):
                fence = None
            out.append(line)
            continue
        if opening:
            info = opening["info"].strip()
            if opening["fence"][0] == ":" or info.startswith("{"):
                raise MystError(
                    f"line {number}: the MyST directive {line.strip()!r} shows as raw text in Jupyter; write it in "
                    "plain Markdown"
                )
            fence = opening["fence"]
            out.append(line)
            continue
        if TARGET.match(line):
            raise MystError(
                f"line {number}: the MyST target {line.strip()!r} shows as raw text in Jupyter; remove it or link "
                "another way"
            )
        out.append(ROLE.sub(lambda match, number=number: _role(match, number, bibliography), line))
    return "\n".join(out)


def _role(match: re.Match, number: int, bibliography: dict[str, Work]) -> str:
    if match["name"] not in CITATION_ROLES:
        raise MystError(
            f"line {number}: the MyST role {match[0]!r} shows as raw text in Jupyter; "
            f"write it in plain Markdown (roles rendered for the exercises: {', '.join(sorted(CITATION_ROLES))})"
        )
    try:
        return citation(match["name"], match["content"], bibliography)
    except MystError as error:
        raise MystError(f"line {number}: {error}") from None
