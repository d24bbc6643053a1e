"""Articles of the knowledge base: markdown with YAML front matter, every number cited.

The curated corpus ships in ``sahay/knowledge/corpus/<folder>/<id>.md``; see docs/knowledge.md
for the format. ``check_article`` enforces the rules the tests enforce: required fields, known
citation markers, and a citation on every sentence that states a number.

Example:
    >>> articles = builtin_articles()
    >>> all(not check_article(a) for a in articles)
    True
"""

from __future__ import annotations

import functools
import re
from datetime import date
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, Field, ValidationError

from sahay.errors import BadInput

CORPUS_DIR = Path(__file__).parent / "corpus"
Audience = Literal["clinician", "patient", "both"]
_FRONT_MATTER = re.compile(r"\A---\s*\n(.*?)\n---\s*\n", re.DOTALL)
_MARKER = re.compile(r"\[(\d+)\]")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z(\"'])")


class ArticleSource(BaseModel):
    id: int
    title: str
    publisher: str
    year: int | None = None
    url: str

    def citation(self) -> str:
        year = f", {self.year}" if self.year else ""
        return f"{self.title}. {self.publisher}{year}. {self.url}"


class Article(BaseModel):
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$")
    title: str
    audience: Audience = "both"
    topics: list[str] = Field(default_factory=list)
    findings: list[str] = Field(default_factory=list)
    last_reviewed: date | None = None
    sources: list[ArticleSource] = Field(default_factory=list)
    body: str
    path: str = Field(description="where it came from: a corpus path or the user's file name")
    builtin: bool = True

    def source(self, number: int) -> ArticleSource | None:
        return next((s for s in self.sources if s.id == number), None)


def parse_article(text: str, path: str, builtin: bool = True) -> Article:
    """An article from markdown with front matter; BadInput names the file and the problem."""
    match = _FRONT_MATTER.match(text)
    if not match:
        raise BadInput(f"{path} has no YAML front matter (a block between '---' lines at the top)")
    try:
        meta = yaml.safe_load(match.group(1)) or {}
    except yaml.YAMLError as exc:
        raise BadInput(f"{path}: invalid YAML front matter ({exc})") from exc
    if not isinstance(meta, dict):
        raise BadInput(f"{path}: the front matter must be a mapping of fields")
    origin = meta.pop("path", None)  # documents the user added record the file they came from
    try:
        return Article(**meta, body=text[match.end() :].strip(), path=str(origin or path), builtin=builtin)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise BadInput(f"{path}: front matter field {where}: {first['msg']}") from exc


def builtin_articles() -> list[Article]:
    """The curated articles that ship with Sahay (parsed once per process; copies are returned)."""
    return [article.model_copy(deep=True) for article in _parsed_builtin_articles()]


@functools.cache
def _parsed_builtin_articles() -> tuple[Article, ...]:
    files = sorted(CORPUS_DIR.rglob("*.md"))
    return tuple(parse_article(f.read_text(encoding="utf-8"), str(f.relative_to(CORPUS_DIR))) for f in files)


def sentences(text: str) -> list[str]:
    """Prose sentences of a markdown body: headings dropped, each list item a sentence of its own."""
    units: list[str] = []
    paragraph: list[str] = []
    for line in [*text.splitlines(), ""]:
        stripped = line.strip()
        item = re.match(r"^([-*+]|\d+[.)])\s+(.*)", stripped)
        if not stripped or stripped.startswith("#") or item:
            if paragraph:
                units.append(" ".join(paragraph))
                paragraph = []
            if item:
                units.append(item.group(2))
            continue
        paragraph.append(stripped)
    return [sentence for unit in units for sentence in sentences_of(unit)]


def sentences_of(text: str) -> list[str]:
    """Sentences of one paragraph of prose."""
    return [s.strip() for s in _SENTENCE_END.split(text) if s.strip()]


def check_article(article: Article) -> list[str]:
    """Problems that break the corpus rules; empty when the article is fine."""
    problems = []
    if not article.sources:
        problems.append("no sources")
    for source in article.sources:
        if not re.match(r"^(https?://|docs/|README\.md)", source.url):
            problems.append(f"source {source.id} has no http(s) URL or Sahay document: {source.url!r}")
    known = {s.id for s in article.sources}
    for sentence in sentences(article.body):
        markers = {int(m) for m in _MARKER.findall(sentence)}
        if markers - known:
            problems.append(f"cites unknown source(s) {sorted(markers - known)}: {sentence[:80]!r}")
        if re.search(r"\d", _MARKER.sub("", sentence)) and not markers:
            problems.append(f"a sentence with a number has no citation: {sentence[:100]!r}")
    return problems
