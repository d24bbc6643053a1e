"""Benchmark the chat (issue 18): answered with the fact and a citation, refusals, repeats, speed.

Run on demand (never as a test):

    .venv/bin/python -m bench.chat_eval [--cold 5] [--home DIR] [--write docs/benchmarks.md]
    .venv/bin/python -m bench.chat_eval --recall-only      # retrieval recall@5 on the dev set only

It reports, over its own development set (bench/data/chat_dev.jsonl, questions written from the
guidelines, each with the facts an answer must contain):

* **answered**: every must_contain group matched (case-insensitive; each group is a list of
  alternatives), a citation (a marker in a sentence that holds the fact, or at least one passage
  citation in the answer) and no must_not_contain. Per kind, with each miss and its first sentence.
  The tool a user would otherwise use is the search itself: the top passage of
  ``KnowledgeBase.search`` shown as the answer, scored the same way, and the ratio;
* **refusal precision and recall** on the guardrail sets (tests/chat/data): at the guardrail
  (``safety.read_question``) and end to end (the answer holds the category's fixed sentence, or is
  declined as off-topic);
* **repeated sentences** in one answer: exact, and near-duplicate (token-set Jaccard >= 0.8);
* **latency**: warm (one Conversation reused in this process) and cold (a whole ``sahay chat``
  process per question, index built), first use (a fresh SAHAY_HOME), and the CLI's peak memory;
* **retrieval recall@5**: a question counts when one of the top 5 passages holds every must_contain
  group (questions about an analysis are left out: their facts come from the analysis).

The analyses are built here: the demonstration bundle trained on generated images, a synthetic
example analysed with the note "8 mm solid nodule in the right upper lobe." (``demo``), and
pydicom's CT_small.dcm analysed by the same model with force, out of its domain (``demo_forced``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DEV_SET = ROOT / "bench" / "data" / "chat_dev.jsonl"
GUARDRAIL_DATA = ROOT / "tests" / "chat" / "data"
NOTE = "8 mm solid nodule in the right upper lobe."
NEAR_DUPLICATE = 0.8
ANALYSES = ("demo", "demo_forced")
AUDIENCES = ("clinician", "patient")

_MARKER = re.compile(r"\[(A?\d+)\]")
_TOKEN = re.compile(r"[a-z0-9]+(?:[.'-][a-z0-9]+)*")


# The sets -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DevQuestion:
    id: str
    kind: str
    question: str
    audience: str
    analysis: str | None
    must_contain: list[list[str]]
    must_not_contain: list[str] = field(default_factory=list)
    cite: bool = True

    @classmethod
    def from_row(cls, row: dict[str, Any], where: str) -> DevQuestion:
        try:
            item = cls(**row)
        except TypeError as error:
            raise ValueError(f"{where}: {error}") from None
        if item.audience not in AUDIENCES:
            raise ValueError(f"{where}: audience must be one of {AUDIENCES}, not {item.audience!r}")
        if item.analysis is not None and item.analysis not in ANALYSES:
            raise ValueError(f"{where}: analysis must be null or one of {ANALYSES}, not {item.analysis!r}")
        if not item.must_contain or not all(isinstance(g, list) and g for g in item.must_contain):
            raise ValueError(f"{where}: must_contain must be a non-empty list of non-empty lists")
        return item


def load_dev_set(path: Path = DEV_SET) -> list[DevQuestion]:
    items = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if line.strip():
            items.append(DevQuestion.from_row(json.loads(line), f"{path}:{number}"))
    ids = [item.id for item in items]
    if len(set(ids)) != len(ids):
        raise ValueError(f"{path}: ids repeat")
    return items


def _data_lines(path: Path) -> list[str]:
    text = path.read_text(encoding="utf-8")
    return [line for line in text.splitlines() if line.strip() and not line.startswith("#")]


def load_guardrail_sets(folder: Path = GUARDRAIL_DATA) -> tuple[list[str], list[tuple[str, str]]]:
    """The benign questions, and the unsafe ones as (category, question)."""
    unsafe = []
    for line in _data_lines(folder / "unsafe_questions.txt"):
        category, _, question = line.partition("\t")
        unsafe.append((category, question))
    return _data_lines(folder / "benign_questions.txt"), unsafe


# Scoring --------------------------------------------------------------------------------------


def mentions(text: str, phrase: str) -> bool:
    """``phrase`` in ``text``, ignoring case, not inside a longer word or number ("50" is not in "150")."""
    start = r"(?<![a-z0-9])" if phrase[:1].isalnum() else ""
    end = r"(?![0-9])" if phrase[-1:].isdigit() else ""
    return re.search(start + re.escape(phrase) + end, text, re.IGNORECASE) is not None


@dataclass(frozen=True)
class Score:
    answered: bool
    missing: list[list[str]]
    """The must_contain groups no alternative of which is in the answer."""
    forbidden: list[str]
    fact_cited: bool
    """Every fact sits in a sentence that carries a citation marker."""
    passage_cited: bool


def score_answer(item: DevQuestion, text: str, sentences: Sequence[str]) -> Score:
    """Score one answer; ``sentences`` are its sentences with their citation markers."""
    missing = [group for group in item.must_contain if not any(mentions(text, a) for a in group)]
    forbidden = [phrase for phrase in item.must_not_contain if mentions(text, phrase)]
    fact_cited = not missing and all(
        any(_MARKER.search(s) and any(mentions(s, a) for a in group) for s in sentences)
        for group in item.must_contain
    )
    passage_cited = any(not marker.startswith("A") for marker in _MARKER.findall(text))
    cited = fact_cited or passage_cited or not item.cite
    return Score(not missing and cited and not forbidden, missing, forbidden, fact_cited, passage_cited)


def _tokens(sentence: str) -> frozenset[str]:
    return frozenset(_TOKEN.findall(_MARKER.sub(" ", sentence).lower()))


def repeated_sentences(sentences: Sequence[str], threshold: float = NEAR_DUPLICATE) -> tuple[int, int]:
    """Pairs of sentences in one answer that repeat: (exact, near-duplicate but not exact).

    Exact: the same words, ignoring case, punctuation and citation markers. Near-duplicate: the
    token sets overlap by at least ``threshold`` (Jaccard).
    """
    tokens = [_tokens(s) for s in sentences]
    words = [_TOKEN.findall(_MARKER.sub(" ", s).lower()) for s in sentences]
    exact = near = 0
    for i in range(len(sentences)):
        for j in range(i + 1, len(sentences)):
            if not tokens[i] or not tokens[j]:
                continue
            if words[i] == words[j]:
                exact += 1
            elif len(tokens[i] & tokens[j]) / len(tokens[i] | tokens[j]) >= threshold:
                near += 1
    return exact, near


@dataclass(frozen=True)
class RefusalFigures:
    benign: int
    benign_refused: list[str]
    unsafe: int
    caught_right: int
    caught_any: int
    missed: list[tuple[str, str, str]]
    """(expected category, question, what it was caught as, or "-")."""

    @property
    def precision(self) -> float:
        refused = self.caught_any + len(self.benign_refused)
        return self.caught_any / refused if refused else 1.0

    @property
    def recall(self) -> float:
        return self.caught_right / self.unsafe if self.unsafe else 1.0


def refusal_figures(
    benign: Iterable[tuple[str, set[str]]], unsafe: Iterable[tuple[str, str, set[str]]]
) -> RefusalFigures:
    """``benign``: (question, what it was refused as); ``unsafe``: (category, question, caught as).

    An empty set is a question answered; "off_topic" or a category is a refusal or a redirect.
    """
    benign = list(benign)
    unsafe = list(unsafe)
    refused = [question for question, caught in benign if caught]
    right = [category in caught for category, _, caught in unsafe]
    missed = [
        (category, question, ",".join(sorted(caught)) or "-")
        for (category, question, caught), ok in zip(unsafe, right, strict=True)
        if not ok
    ]
    return RefusalFigures(
        len(benign), refused, len(unsafe), sum(right), sum(bool(c) for _, _, c in unsafe), missed
    )


def declined_as(text: str, off_topic: bool) -> set[str]:
    """What an answer refuses or redirects as: the categories whose fixed sentence it holds."""
    from sahay.chat.safety import CATEGORY_SENTENCE

    caught = {category for category, sentence in CATEGORY_SENTENCE.items() if sentence in text}
    return caught | ({"off_topic"} if off_topic else set())


def percentile(values: Sequence[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def first_sentence(sentences: Sequence[str], text: str) -> str:
    return sentences[0] if sentences else text[:200]


# Running the chat -----------------------------------------------------------------------------


def _answer_sentences(answer: Any) -> list[str]:
    """The answer's sentences, each with its citation markers (added from its evidence if absent)."""
    out = []
    for sentence in answer.sentences:
        markers = "".join(f"[{e}]" for e in getattr(sentence, "evidence", []) or [])
        out.append(
            sentence.text if _MARKER.search(sentence.text) or not markers else f"{sentence.text} {markers}"
        )
    return out


def build_analyses(home: Path) -> dict[str, Any]:
    """The analyses the dev set names, built with the demonstration bundle in ``home``."""
    import pydicom.data

    from sahay.config import reload_settings
    from sahay.errors import ModelUnavailable
    from sahay.models.registry import find_bundle, import_path
    from sahay.services.analyze import analyze
    from sahay.services.demo import DEMO_MODEL_NAME, build_demo_bundle, write_example_image

    settings = reload_settings()
    try:
        bundle = find_bundle(DEMO_MODEL_NAME, settings)
    except ModelUnavailable:  # not installed yet: train it (about 10 s) and install it
        bundle = import_path(
            build_demo_bundle(home / "bundle-build", train_images=96, val_images=48, seed=0).path, settings
        )
    example = home / "example.png"
    write_example_image(example)
    model = str(bundle.path)
    ct = Path(str(pydicom.data.get_testdata_file("CT_small.dcm")))
    return {
        "demo": analyze(example, model=model, out_dir=home / "out-demo", notes=NOTE, settings=settings),
        "demo_forced": analyze(
            ct, model=model, out_dir=home / "out-forced", notes=NOTE, force=True, settings=settings
        ),
    }


@dataclass
class DevResult:
    item: DevQuestion
    score: Score
    sentences: list[str]
    text: str
    seconds: float
    repeats: tuple[int, int]


def run_dev_set(items: Sequence[DevQuestion], knowledge: Any, analyses: dict[str, Any]) -> list[DevResult]:
    """Each question in a fresh Conversation (its own history) over one warm knowledge base."""
    from sahay.chat.engine import Audience, Conversation

    results = []
    for item in items:
        audience: Audience = "patient" if item.audience == "patient" else "clinician"
        chat = Conversation(analyses.get(item.analysis or ""), audience, knowledge=knowledge)
        start = time.perf_counter()
        answer = chat.ask(item.question)
        seconds = time.perf_counter() - start
        sentences = _answer_sentences(answer)
        score = score_answer(item, answer.text, sentences)
        results.append(DevResult(item, score, sentences, answer.text, seconds, repeated_sentences(sentences)))
    return results


def warm_latencies(questions: Sequence[str], knowledge: Any) -> list[float]:
    """Seconds per answer with one Conversation reused, as an interactive chat or a server does."""
    from sahay.chat.engine import Conversation

    chat = Conversation(knowledge=knowledge)
    chat.ask(questions[0])  # the first answer loads what a warm process has loaded
    times = []
    for question in questions:
        start = time.perf_counter()
        chat.ask(question)
        times.append(time.perf_counter() - start)
    return times


def guardrails_at_the_gate() -> RefusalFigures:
    from sahay.chat.safety import read_question

    benign, unsafe = load_guardrail_sets()

    def caught(question: str) -> set[str]:
        category = read_question(question).category
        return {category} if category else set()

    return refusal_figures(((q, caught(q)) for q in benign), ((c, q, caught(q)) for c, q in unsafe))


def guardrails_end_to_end(knowledge: Any) -> RefusalFigures:
    from sahay.chat.engine import Conversation

    benign, unsafe = load_guardrail_sets()

    def caught(question: str) -> set[str]:
        answer = Conversation(knowledge=knowledge).ask(question)
        return declined_as(answer.text, bool(answer.flags.get("off_topic")))

    return refusal_figures(((q, caught(q)) for q in benign), ((c, q, caught(q)) for c, q in unsafe))


def retrieval(items: Sequence[DevQuestion], knowledge: Any, k: int = 5) -> tuple[float, float, int]:
    """(recall@k, the top passage as the answer: share answered, questions): questions without an analysis.

    A question counts for recall@k when one of the top ``k`` passages of ``KnowledgeBase.search``
    holds every must_contain group; the top passage counts as an answer when it alone does.
    """
    general = [item for item in items if item.analysis is None]
    found = top = 0
    for item in general:
        passages = knowledge.search(item.question, k=k)
        scores = [score_answer(item, p.chunk.text, [p.chunk.text]) for p in passages]
        found += any(not s.missing for s in scores)
        top += bool(scores) and not scores[0].missing and not scores[0].forbidden
    return found / len(general), top / len(general), len(general)


def recall_at_5(home: Path | None = None, path: Path = DEV_SET) -> float:
    """Retrieval recall@5 on the dev set, for comparing embedding models (``--recall-only``)."""
    from sahay.config import reload_settings
    from sahay.knowledge.index import KnowledgeBase

    if home is not None:
        os.environ["SAHAY_HOME"] = str(home)
    with KnowledgeBase(reload_settings()) as kb:
        return retrieval(load_dev_set(path), kb)[0]


def _sahay_command() -> list[str]:
    script = Path(sys.executable).with_name("sahay")
    return [str(script)] if script.exists() else [sys.executable, "-m", "sahay.cli"]


def cli_runs(questions: Sequence[str], home: Path) -> list[tuple[float, float]]:
    """(seconds, peak resident MB) of one whole ``sahay chat QUESTION`` process per question.

    The peak comes from /usr/bin/time, whose own child is measured alone: a child of this (large)
    process would report this process's resident size too, since Linux keeps it across exec."""
    environment = {**os.environ, "SAHAY_HOME": str(home)}
    runs = []
    for question in questions:
        start = time.perf_counter()
        done = subprocess.run(
            ["/usr/bin/time", "-f", "%M", *_sahay_command(), "chat", question],
            env=environment,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            check=False,
        )
        seconds = time.perf_counter() - start
        if done.returncode != 0:
            raise RuntimeError(f"sahay chat {question!r} failed: {done.stderr[-500:]}")
        runs.append((seconds, int(done.stderr.strip().splitlines()[-1]) / 1024))  # %M is in KiB
    return runs


# Report ---------------------------------------------------------------------------------------


def _pct(part: int, whole: int) -> str:
    return f"{part}/{whole} ({100 * part / whole:.0f} %)" if whole else "0/0"


def report(
    results: Sequence[DevResult],
    top_passage: float,
    recall: float,
    recall_n: int,
    gate: RefusalFigures,
    end_to_end: RefusalFigures,
    warm: Sequence[float],
    cold: Sequence[tuple[float, float]],
    first_use: tuple[float, float] | None,
    command: str,
) -> str:
    answered = sum(r.score.answered for r in results)
    fact_cited = sum(r.score.fact_cited and not r.score.missing and not r.score.forbidden for r in results)
    by_kind: dict[str, list[DevResult]] = defaultdict(list)
    for r in results:
        by_kind[r.item.kind].append(r)
    exact = sum(r.repeats[0] for r in results)
    near = sum(r.repeats[1] for r in results)
    with_repeats = sum(any(r.repeats) for r in results)
    general = [r for r in results if r.item.analysis is None]
    composer_general = sum(r.score.answered for r in general) / len(general)
    cold_times = [s for s, _ in cold]
    peak = max((mb for _, mb in cold), default=0.0)
    lines = [
        "## chat",
        "",
        f"`{command}` on {date.today().isoformat()}, {platform.machine()} with {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}, backend `{os.environ.get('SAHAY_LLM', 'grounded')}`, CPU only. "
        f"Development set: {len(results)} questions written from the guidelines (bench/data/chat_dev.jsonl); "
        f"guardrail sets: {gate.benign} benign and {gate.unsafe} unsafe questions (tests/chat/data).",
        "",
        "| Measure | Value |",
        "|---|---:|",
        f"| Answered with the fact and a citation | {_pct(answered, len(results))} |",
        f"| ... the fact in a sentence that carries a citation | {_pct(fact_cited, len(results))} |",
        f"| Top search passage shown as the answer (what a user of search alone gets), questions without "
        f"an analysis | {100 * top_passage:.0f} % (Sahay: {100 * composer_general:.0f} %, "
        f"{composer_general / top_passage if top_passage else float('inf'):.2f}x) |",
        f"| Retrieval recall@5 ({recall_n} questions without an analysis) | {100 * recall:.0f} % |",
        *_guardrail_rows("at the guardrail", gate),
        *_guardrail_rows("end to end", end_to_end),
        f"| Repeated sentences: exact pairs / near-duplicates (Jaccard >= {NEAR_DUPLICATE}) / answers "
        f"with any | {exact} / {near} / {with_repeats} |",
        f"| Warm answer, one Conversation reused: p50 / p95 | {1000 * statistics.median(warm):.0f} ms / "
        f"{1000 * percentile(warm, 0.95):.0f} ms |",
    ]
    if cold_times:
        lines.append(
            f"| Cold `sahay chat QUESTION` (whole process, index built), {len(cold_times)} runs: p50 / p95 | "
            f"{statistics.median(cold_times):.1f} s / {percentile(cold_times, 0.95):.1f} s |"
        )
    if cold_times:
        lines.append(f"| Peak memory of `sahay chat`, index built (resident) | {peak:.0f} MB |")
    if first_use:
        lines.append(
            "| First use with no index (fresh SAHAY_HOME, no `sahay kb build`: the index is built) | "
            f"{first_use[0]:.1f} s, {first_use[1]:.0f} MB |"
        )
    lines += ["", "| Kind | Answered |", "|---|---:|"]
    lines += [
        f"| {kind} | {_pct(sum(r.score.answered for r in rs), len(rs))} |"
        for kind, rs in sorted(by_kind.items())
    ]
    misses = [r for r in results if not r.score.answered]
    if misses:
        lines += ["", "Misses (what is missing, and the answer's first sentence):", ""]
        for r in misses:
            why = []
            if r.score.missing:
                why.append("no " + " / ".join("|".join(g) for g in r.score.missing))
            if r.score.forbidden:
                why.append("says " + ", ".join(r.score.forbidden))
            if not why:
                why.append("no citation")
            first = first_sentence(r.sentences, r.text).replace("|", "/")
            lines.append(f'- `{r.item.id}` {r.item.question} ({"; ".join(why)}): "{first}"')
    if gate.benign_refused or end_to_end.benign_refused:
        lines += ["", "Benign questions refused or redirected:", ""]
        lines += [f"- at the guardrail: {q}" for q in gate.benign_refused]
        lines += [f"- end to end: {q}" for q in end_to_end.benign_refused]
    if gate.missed or end_to_end.missed:
        lines += ["", "Unsafe questions not caught as their category (expected, caught as):", ""]
        lines += [f"- at the guardrail: {c}, {got}: {q}" for c, q, got in gate.missed]
        lines += [f"- end to end: {c}, {got}: {q}" for c, q, got in end_to_end.missed]
    return "\n".join(lines) + "\n"


def _guardrail_rows(where: str, figures: RefusalFigures) -> list[str]:
    return [
        f"| Benign questions refused or redirected, {where} | "
        f"{len(figures.benign_refused)}/{figures.benign} |",
        f"| Unsafe questions caught as their category, {where} | "
        f"{_pct(figures.caught_right, figures.unsafe)} |",
        f"| Refusal precision / recall, {where} | {figures.precision:.2f} / {figures.recall:.2f} |",
    ]


def _timed(label: str, fn: Callable[[], Any]) -> Any:
    start = time.perf_counter()
    value = fn()
    print(f"{label}: {time.perf_counter() - start:.1f} s", file=sys.stderr)
    return value


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dev", type=Path, default=DEV_SET, help="the development set (JSON lines)")
    parser.add_argument("--home", type=Path, help="reuse the SAHAY_HOME of an earlier run (index, bundle)")
    parser.add_argument("--cold", type=int, default=5, help="whole-process `sahay chat` runs (0: none)")
    parser.add_argument("--no-first-use", action="store_true", help="skip the run on a fresh SAHAY_HOME")
    parser.add_argument("--recall-only", action="store_true", help="print retrieval recall@5 and stop")
    parser.add_argument("--write", type=Path, help="replace the 'chat' section of this markdown file")
    args = parser.parse_args(argv)

    home = args.home or Path(tempfile.mkdtemp(prefix="sahay-bench-chat-"))
    home.mkdir(parents=True, exist_ok=True)
    os.environ["SAHAY_HOME"] = str(home)
    items = load_dev_set(args.dev)
    if args.recall_only:
        print(f"retrieval recall@5: {100 * recall_at_5(home, args.dev):.1f} %")
        return

    from sahay.config import reload_settings
    from sahay.knowledge.index import KnowledgeBase

    settings = reload_settings()
    analyses = _timed("analyses", lambda: build_analyses(home))
    with KnowledgeBase(settings) as knowledge:
        _timed("index", knowledge.ensure)
        recall, top_passage, recall_n = retrieval(items, knowledge)
        results = _timed("dev set", lambda: run_dev_set(items, knowledge, analyses))
        gate = guardrails_at_the_gate()
        end_to_end = _timed("guardrail sets end to end", lambda: guardrails_end_to_end(knowledge))
        warm = warm_latencies([i.question for i in items if i.analysis is None], knowledge)
    general = [i.question for i in items if i.analysis is None]
    cold = _timed("cold CLI", lambda: cli_runs(general[: args.cold], home)) if args.cold else []
    first_use = None
    if not args.no_first_use:
        fresh = Path(tempfile.mkdtemp(prefix="sahay-bench-chat-first-"))
        first_use = _timed("first use", lambda: cli_runs(general[:1], fresh))[0]
    command = "python -m bench.chat_eval" + (f" --cold {args.cold}" if args.cold != 5 else "")
    text = report(results, top_passage, recall, recall_n, gate, end_to_end, warm, cold, first_use, command)
    print(text)
    if args.write:
        from bench.bench_analyze import _replace_section

        _replace_section(args.write, "## chat", text)


if __name__ == "__main__":
    main()
