"""The chat: a conversation about one analysis, answered from it and from cited passages.

Each question goes through the same steps, whatever backend writes the answer:

1. read the question for guardrails (``sahay.chat.safety``) and for what it asks
   (``sahay.chat.questions``: a definition, a category's meaning, criteria, causes, next steps,
   this analysis, Sahay's own outputs...);
2. gather the context, best first: the knowledge-base sections the question names ("BI-RADS 4",
   "Kerley B lines", a nodule's size band in the Fleischner tables), the sections that answer its
   kind for each finding in focus, then the best passages of a search. A section written about
   the image ("If Sahay calls it positive") is used only when the model calls that finding positive;
   sentences that try to instruct the assistant are dropped;
3. decline off-topic requests (a phrase that names a section is on topic); otherwise open with
   what the analysis says when the question is about it: its notices (demonstration, forced,
   out of domain), then the positive findings with probability and threshold, then the notable
   negatives; then let the backend write the answer;
4. verify every sentence (``sahay.chat.verify``) as it is written, skip near-repeats, and number
   the citations by source: each ``[n]`` is one source, listed once. ``on_token`` receives the
   shown sentences only, in the order that makes the answer's text;
5. when a generative backend's sentences all fail verification, answer with the grounded composer;
6. give the decision-support disclaimer once a conversation.

Example:
    >>> chat = Conversation(analysis=Analysis.from_json_file(Path("out/analysis.json")))  # doctest: +SKIP
    >>> print(chat.ask("Which specialist should she see?").text)                      # doctest: +SKIP
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from sahay.about import DISCLAIMER
from sahay.analysis import Analysis
from sahay.chat import safety
from sahay.chat.backends import Backend, TokenCallback, Turn, make_backend
from sahay.chat.backends.grounded import GroundedComposer, cite_each
from sahay.chat.context import Context, Fact, analysis_facts
from sahay.chat.questions import SECTION_AFFINITY, QuestionKind, asks_if_normal, question_kind
from sahay.chat.verify import CheckedSentence, SentenceStream, check_sentence, near_repeat, split_sentences
from sahay.chat.websearch import ExaSearch, WebSearch
from sahay.config import Settings, get_settings
from sahay.errors import BadInput
from sahay.knowledge.corpus import Article, ArticleSource
from sahay.knowledge.index import Chunk, KnowledgeBase, Passage
from sahay.knowledge.targets import SectionTarget, SectionTargets, headings, normalise, stem

Audience = Literal["clinician", "patient"]
MAX_FINDINGS = 3
PASSAGES_PER_QUESTION = 3
TARGET_SECTIONS = 3
NOTABLE_NEGATIVES = 2
URGENT_ARTICLE = "urgent-symptoms"
RED_FLAG_FINDINGS = frozenset({"Pneumothorax"})
"""Positive findings that can be emergencies whatever the question: the reader is told once that
the image needs prompt review. Emergency-care advice is for someone describing symptoms now."""
IMAGE_SECTION = "If Sahay calls it positive"
"""The one section an article may write about "this image": used only for a positive finding."""
ON_TOPIC_SIMILARITY = 0.3
"""A question whose closest passage is less similar than this is off topic (measured: medical
questions score 0.4 to 0.8, "tell me a joke" 0.16)."""
NEAR_REPEAT = 0.6
"""Two sentences sharing this share of their words (Jaccard) say the same thing: the second is skipped."""

NO_ANALYSIS = (
    "No image analysis is in focus in this conversation, so I cannot say what an image shows; "
    "what follows is general information."
)
FELL_BACK = (
    "The language model's sentences could not be checked against the sources, so this answer is Sahay's own."
)
OWN_SENTENCES = frozenset({NO_ANALYSIS, FELL_BACK})
"""Fixed sentences of the engine: like the guardrails', they state no fact."""

_SECTION_FOR_KIND: dict[str, tuple[str, ...]] = {
    "analysis": ("What it is",),
    "next_steps": ("Usual next steps",),
    "specialist": ("Which specialist",),
    "urgency": ("How urgent is it",),
}
"""The section of a finding's article that answers each kind, for the findings in focus."""
_ABOUT_RESULT_KINDS = frozenset({"analysis", "next_steps", "specialist", "urgency", "prognosis"})
_NODULE_SIZE = re.compile(
    r"(\d+(?:\.\d+)?)\s*(mm|cm|millimet\w*|centimet\w*)\b[^.?!]{0,40}?\bnodules?\b", re.IGNORECASE
)
_WORD = re.compile(r"[a-z0-9]+")


@dataclass
class Reference:
    """One cited source, numbered as the answer cites it, with the passage that supports it."""

    number: int
    source: ArticleSource
    passage: Passage


@dataclass
class Answer:
    text: str
    sentences: list[CheckedSentence]
    context: Context
    intent: str
    backend: str
    flags: dict[str, bool]
    dropped: list[CheckedSentence] = field(default_factory=list)
    disclaimer: str | None = None
    references: list[Reference] = field(default_factory=list)

    def citations(self) -> list[dict[str, Any]]:
        """The sources the answer cites, each once, numbered as in the text, with its passage."""
        return [
            {
                "id": ref.number,
                "title": ref.source.title,
                "publisher": ref.source.publisher,
                "year": ref.source.year,
                "url": ref.source.url,
                "section": ref.passage.chunk.section,
                "document": ref.passage.chunk.document,
                "document_title": ref.passage.chunk.title,
                "sources": [ref.source.model_dump()],
                "passage": ref.passage.chunk.text,
            }
            for ref in self.references
        ]

    def to_dict(self) -> dict[str, Any]:
        facts = {f.id: f for f in self.context.facts}
        references = {str(r.number): r for r in self.references}
        return {
            "answer": self.text,
            "intent": self.intent,
            "backend": self.backend,
            "flags": self.flags,
            "sentences": [
                {"text": s.text, "evidence": [_evidence(e, facts, references) for e in s.evidence]}
                for s in self.sentences
            ],
            "citations": self.citations(),
            "removed": [{"text": s.text, "problem": s.problem} for s in self.dropped],
            "disclaimer": self.disclaimer,
        }


def _evidence(marker: str, facts: dict[str, Fact], references: dict[str, Reference]) -> dict[str, Any]:
    if marker.startswith("A"):
        fact = facts[marker]
        return {"type": "analysis", "id": marker, "field": fact.field, "text": fact.text}
    reference = references[marker]
    return {
        "type": "passage",
        "id": reference.number,
        "document": reference.passage.chunk.document,
        "source": reference.source.title,
        "text": reference.passage.chunk.text,
    }


def detect_intent(question: str) -> QuestionKind:
    """What the question asks for (kept under its old name for callers of the library)."""
    return question_kind(question)


class Conversation:
    """History, the analysis in focus, and the audience; ``ask`` answers one question."""

    def __init__(
        self,
        analysis: Analysis | None = None,
        audience: Audience = "clinician",
        *,
        settings: Settings | None = None,
        knowledge: KnowledgeBase | None = None,
        backend: Backend | None = None,
        web: WebSearch | None = None,
    ) -> None:
        if audience not in ("clinician", "patient"):
            raise BadInput(f"audience must be clinician or patient, not {audience!r}")
        self.settings = settings or get_settings()
        self.analysis = analysis
        self.audience = audience
        self.knowledge = knowledge or KnowledgeBase(self.settings)
        self.backend = backend or make_backend(self.settings)
        if web is None and self.settings.web_search_url:
            web = ExaSearch(self.settings.web_search_url, self.settings.web_search_api_key)
        self.web = web
        self.history: list[Turn] = []
        self.disclaimer_given = False
        self.urgent_review_given = False
        self._targets: SectionTargets | None = None

    def ask(self, question: str, on_token: TokenCallback | None = None) -> Answer:
        question = question.strip()
        if not question:
            raise BadInput("the question is empty")
        flags = safety.read_question(question)
        kind = question_kind(question)
        targets = self._section_targets(question, kind)
        context = self._context(question, kind, flags, targets)
        positives = {f.label for f in self.analysis.positive_findings} if self.analysis else set()
        # Emergency advice answers symptoms described now; a flagged finding on the film is said once
        # per conversation, to whoever reviews it, not opened on every answer.
        red_flag = flags.red_flag
        urgent_review = bool(positives & RED_FLAG_FINDINGS) and not self.urgent_review_given
        closest = max((p.dense_similarity or 0.0 for p in context.passages), default=0.0)
        about_result = self.analysis is not None and (flags.about_analysis or kind in _ABOUT_RESULT_KINDS)
        # With no analysis, "is it serious?" still asks about a result: it is told none is in focus.
        no_result = (
            self.analysis is None and not targets and (kind == "analysis" or kind in _ABOUT_RESULT_KINDS)
        )
        on_topic = about_result or no_result or bool(targets) or closest >= ON_TOPIC_SIMILARITY
        say = _Speaker(on_token)
        if flags.self_harm:  # support, and nothing else
            say(CheckedSentence(safety.SELF_HARM_SUPPORT))
            return self._finish(question, say.said, [], context, kind, flags, [])
        if not on_topic and flags.category is None:
            say(CheckedSentence(safety.OFF_TOPIC))
            return self._finish(question, say.said, [], context, kind, flags, [], off_topic=True)
        lead: list[str] = []
        if red_flag:
            lead.append(safety.URGENT_LEAD)
        elif urgent_review:
            lead.append(safety.URGENT_REVIEW)
        if flags.stop_treatment:
            lead.append(safety.STOP_TREATMENT_DECLINED)
        if flags.dosing:
            lead.append(safety.DOSING_DECLINED)
        if flags.diagnosis_without_clinician:
            lead.append(safety.DIAGNOSIS_DECLINED)
        elif flags.diagnosis_demand:
            lead.append(safety.NO_DIAGNOSIS)
        if no_result or (kind == "analysis" and self.analysis is None):
            lead.append(NO_ANALYSIS)
        if context.uncovered and len(context.uncovered) == len(positives):
            lead.append(safety.NO_ARTICLE)  # what retrieval finds is not about these findings
        for text in lead:
            say(CheckedSentence(text))
        self.urgent_review_given = self.urgent_review_given or safety.URGENT_REVIEW in lead

        references = _References(context)
        body: list[CheckedSentence] = []
        dropped: list[CheckedSentence] = []

        def accept(sentence: CheckedSentence) -> None:
            if sentence.text in lead or any(_near_repeat(sentence, s) for s in body):
                return
            shown = references.render(sentence)
            body.append(shown)
            say(shown)

        named = self._findings_named(question)
        opening = _opening(context, kind, question, about_result, named) if self.analysis else []
        for sentence in opening:
            checked = check_sentence(sentence, context)
            if checked.problem is None:
                accept(checked)
            else:
                dropped.append(checked)
        opened = len(body)
        stream = SentenceStream(context, on_verified=accept)
        raw = self.backend.answer(context, self.history, kind, stream.feed)
        if raw.startswith(stream.raw):  # a backend that streamed less than it returned (or nothing)
            stream.feed(raw[len(stream.raw) :])
        written = stream.finish()
        dropped += written.dropped
        backend_name = self.backend.name
        if len(body) == opened and written.dropped and self.backend.name != GroundedComposer.name:
            # Every sentence the model wrote failed its check: the grounded answer is still there.
            say(CheckedSentence(FELL_BACK))
            grounded = SentenceStream(context, on_verified=accept)
            grounded.feed(GroundedComposer().answer(context, self.history, kind))
            dropped += grounded.finish().dropped
            backend_name = f"{GroundedComposer.name} (fallback: every sentence of {self.backend.name} failed)"
        if flags.prognosis:
            say(CheckedSentence(safety.PROGNOSIS_CAVEAT))
        if not body:
            say(CheckedSentence(safety.NOT_FOUND))
        answer = self._finish(question, say.said, dropped, context, kind, flags, references.used)
        answer.backend = backend_name
        return answer

    def _finish(
        self,
        question: str,
        sentences: list[CheckedSentence],
        dropped: list[CheckedSentence],
        context: Context,
        kind: str,
        flags: safety.QuestionFlags,
        references: list[Reference],
        off_topic: bool = False,
    ) -> Answer:
        text = " ".join(s.text for s in sentences)
        answer = Answer(
            text=text,
            sentences=sentences,
            context=context,
            intent=kind,
            backend=self.backend.name,
            flags={
                "red_flag": flags.red_flag,
                "dosing_declined": flags.dosing,
                "no_diagnosis": flags.diagnosis_demand,
                "self_harm": flags.self_harm,
                "stop_treatment_declined": flags.stop_treatment,
                "prognosis": flags.prognosis,
                "off_topic": off_topic,
            },
            dropped=dropped,
            disclaimer=None if self.disclaimer_given else DISCLAIMER,
            references=references,
        )
        self.disclaimer_given = True
        self.history.append(Turn(question, text))
        return answer

    def _section_targets(self, question: str, kind: QuestionKind) -> list[SectionTarget]:
        """The sections the question names, the best answer first: a heading match counts twice, its
        article's title once, and a section whose heading fits the question's kind (a glossary entry,
        for a definition) counts double."""
        if self._targets is None:
            self._targets = _section_targets(self.knowledge)
        affinity = SECTION_AFFINITY.get(kind)

        def fits(target: SectionTarget) -> bool:
            if kind == "definition" and target.article_id.startswith("glossary"):
                return True
            return affinity is not None and re.search(affinity, target.heading, re.IGNORECASE) is not None

        def score(target: SectionTarget) -> tuple[float, bool]:
            strength = 2 * target.heading_score + target.title_score
            return strength * (2 if fits(target) else 1), fits(target)

        return sorted(self._targets.match(question), key=score, reverse=True)

    def _context(
        self, question: str, kind: QuestionKind, flags: safety.QuestionFlags, targets: list[SectionTarget]
    ) -> Context:
        context = Context(question, self.audience, kind=kind)
        positives: list[str] = []
        if self.analysis is not None:
            context.facts = analysis_facts(self.analysis)
            positives = [f.label for f in self.analysis.positive_findings][:MAX_FINDINGS]
        answering: list[Passage] = []
        if flags.red_flag:
            answering += self.knowledge.document_passages(URGENT_ARTICLE)[:2]
        sizes = self._nodule_sizes(question, from_note=kind == "next_steps")
        if sizes and kind in ("next_steps", "category", "general", "definition", "analysis"):
            answering += self._fleischner_passages(question, sizes)
        wanted = _SECTION_FOR_KIND.get(kind, ())
        # A finding the question names (by its label, or a heading or title of its article) is asked
        # about; with none named, the positive findings are, unless the question names a section.
        asked = list(dict.fromkeys([*self._findings_named(question), *self._findings_targeted(targets)]))
        about_findings = asked or kind == "analysis" or not any(t.heading_score for t in targets)
        if not answering and wanted and about_findings:
            if self.audience == "patient" and kind == "analysis":
                wanted = (IMAGE_SECTION, "In plain words")
            for label in asked or positives:
                articles = self.knowledge.articles_for_finding(label)[:1]
                if not articles and label in positives:
                    context.uncovered.append(label)
                for article in articles:
                    for section in wanted:
                        answering += self.knowledge.section_passages(article.id, section)
        if not answering and targets and (targets[0].heading_score or not wanted):
            best = targets[0]  # the best section, and as good ones of other articles (other findings)
            answering += self.knowledge.section_passages(best.article_id, best.heading)
            for target in targets[1:TARGET_SECTIONS]:
                same = (target.heading_score, target.title_score) == (best.heading_score, best.title_score)
                if same and target.article_id != best.article_id:
                    answering += self.knowledge.section_passages(target.article_id, target.heading)
        query = question if not positives else f"{question} {' '.join(positives)}"
        found = self.knowledge.search(query, k=PASSAGES_PER_QUESTION, audience=self._audience_filter())
        if self.web is not None:
            found += [_web_passage(r.title, r.url, r.text) for r in self.web.search(question)]
        allowed = self._image_sections_allowed(positives)
        context.passages = _clean([p for p in answering + found if allowed(p)])
        context.answering = {p.chunk.id for p in answering}
        return context

    def _image_sections_allowed(self, positives: list[str]) -> Any:
        """A section written about "this image" stands only for a finding the model calls positive."""
        all_positive = {f.label for f in self.analysis.positive_findings} if self.analysis else set()

        def allowed(passage: Passage) -> bool:
            if passage.chunk.section.lower() != IMAGE_SECTION.lower():
                return True
            try:
                findings = set(self.knowledge.article(passage.chunk.document).findings)
            except BadInput:
                return False
            return bool(findings & all_positive)

        return allowed

    def _findings_targeted(self, targets: list[SectionTarget]) -> list[str]:
        """The findings of the finding articles whose headings the question names ("enlarged heart")."""
        labels: list[str] = []
        for target in targets:
            if target.heading_score:
                article = self.knowledge.article(target.article_id)
                if article.path.startswith("findings/"):
                    labels += article.findings
        return labels

    def _findings_named(self, question: str) -> list[str]:
        """The analysis's findings the question names, by label or by its article's title words."""
        if self.analysis is None:
            return []
        words = _stems(question)
        named = []
        for finding in self.analysis.findings:
            names = [finding.label.replace("_", " ")]
            names += [a.title for a in self.knowledge.articles_for_finding(finding.label)[:1]]
            for name in names:
                for phrase in re.split(r"[()]", name):
                    phrase_words = _stems(phrase) - {"on", "a", "the", "chest", "x", "ray", "usually"}
                    if phrase_words and phrase_words <= words:
                        named.append(finding.label)
                        break
                else:
                    continue
                break
        return named

    def _nodule_sizes(self, question: str, from_note: bool) -> list[tuple[float, str]]:
        """Nodule sizes in millimetres, with the text that gives them: from the question, then the note."""
        sizes = [(_millimetres(m), question) for m in _NODULE_SIZE.finditer(question)]
        notes = self.analysis.notes if self.analysis is not None and from_note else None
        if notes is not None:
            for entity in notes.entities:
                if entity.concept == "Nodule" and entity.measurement_mm and entity.certainty != "negative":
                    sizes.append((entity.measurement_mm, entity.text))
        return sizes

    def _fleischner_passages(self, question: str, sizes: list[tuple[float, str]]) -> list[Passage]:
        """The Fleischner 2017 sections for the nodule's size band and type, low risk first."""
        size, said = sizes[0]
        described = normalise(f"{question} {said}")
        nodule_type = next(
            (t for t in ("part solid", "ground glass", "subsolid") if f" {t} " in described), "solid"
        )
        multiple = " multiple " in described or " nodules " in described
        chosen: list[tuple[int, Passage]] = []
        for article in _articles(self.knowledge):
            if "fleischner" not in article.id:
                continue
            for heading in headings(article.body):
                text = normalise(heading)
                if not _in_band(heading, size):
                    continue
                if nodule_type == "solid" and re.search(r" (part solid|ground glass|subsolid) ", text):
                    continue
                if nodule_type != "solid" and f" {nodule_type} " not in text:
                    continue
                order = (1 if " high risk " in text else 0) + (2 if (" multiple " in text) != multiple else 0)
                chosen += [(order, p) for p in self.knowledge.section_passages(article.id, heading)]
        return [p for _, p in sorted(chosen, key=lambda pair: pair[0])][:2]

    def _audience_filter(self) -> str | None:
        return "patient" if self.audience == "patient" else None


class _Speaker:
    """Keeps the sentences said, in order, and passes each to ``on_token`` joined as ``Answer.text``
    joins them, so that the streamed text, put together, is the answer's text."""

    def __init__(self, on_token: TokenCallback | None) -> None:
        self.on_token = on_token
        self.said: list[CheckedSentence] = []

    def __call__(self, sentence: CheckedSentence) -> None:
        if self.on_token is not None:
            self.on_token(f" {sentence.text}" if self.said else sentence.text)
        self.said.append(sentence)


class _References:
    """Renumbers a verified sentence's passage citations as source citations: each ``[n]`` of the
    shown answer is one source, numbered in order of first use. The sources of a sentence are those
    its own sentence in the article cites (found by word overlap), else those of its passage."""

    def __init__(self, context: Context) -> None:
        self.context = context
        self.used: list[Reference] = []

    def render(self, sentence: CheckedSentence) -> CheckedSentence:
        evidence: list[str] = []

        def renumber(match: re.Match[str]) -> str:
            marker = match.group(1)
            if marker.startswith("A"):
                evidence.append(marker)
                return match.group(0)
            passage = self.context.passage(int(marker))
            assert passage is not None  # the verifier passed only citations that exist
            numbers = [self._number(source, passage) for source in _sentence_sources(sentence.text, passage)]
            evidence.extend(str(n) for n in numbers)
            return "".join(f"[{n}]" for n in numbers)

        text = re.sub(r"\[(A?\d+)\]", renumber, sentence.text)
        return CheckedSentence(text, evidence=list(dict.fromkeys(evidence)))

    def _number(self, source: ArticleSource, passage: Passage) -> int:
        for reference in self.used:
            if reference.source.url == source.url and reference.source.title == source.title:
                return reference.number
        reference = Reference(len(self.used) + 1, source, passage)
        self.used.append(reference)
        return reference.number


def _sentence_sources(text: str, passage: Passage) -> list[ArticleSource]:
    """The sources of the passage sentence closest to ``text`` when it cites any, else the passage's."""
    words = _stems(re.sub(r"\[A?\d+\]", "", text))
    best, overlap = None, 0.0
    for candidate in split_sentences(passage.chunk.text):
        candidate_words = _stems(re.sub(r"\[\d+\]", "", candidate))
        score = len(words & candidate_words) / max(1, len(words | candidate_words))
        if score > overlap:
            best, overlap = candidate, score
    if best is not None and overlap >= 0.5:
        numbers = {int(n) for n in re.findall(r"\[(\d+)\]", best)}
        cited = [s for s in passage.sources if s.id in numbers]
        if cited:
            return cited
    return passage.cited_sources()[:2]


def _opening(context: Context, kind: str, question: str, about_result: bool, named: list[str]) -> list[str]:
    """What the analysis says, before anything else, when the question is about it: the notices,
    then (for questions about the result) the positive findings with their numbers and the notable
    negatives; for next steps, specialists and urgency, which findings are positive."""
    if not about_result:
        return []
    opening: list[str] = []
    for fact in context.facts:
        if fact.field in ("demonstration_notice", "quality", "notices"):
            opening += cite_each(fact.text, fact.id)
    findings = [f for f in context.facts if f.label and f.field == f"findings[{f.label}]"]
    positives = [f for f in findings if f.positive]
    negatives = [f for f in findings if not f.positive]
    if kind == "analysis":
        if asks_if_normal(question) and positives:
            names = _listed([str(f.label) for f in positives])
            cites = _cites(positives)
            opening.append(
                f"The model does not read this image as normal: it calls {names} positive {cites}."
            )
        asked = [f for f in findings if f.label in named]
        stated = list(dict.fromkeys([*asked, *positives]))
        opening += [f"{f.text[:-1]} {_cites([f])}." for f in stated]
        notable = [f for f in negatives if f not in stated][:NOTABLE_NEGATIVES]
        if not positives:
            opening.append(
                f"The model calls none of its findings positive {_cites(notable or negatives[:1])}."
            )
        opening += [f"{f.text[:-1]} {_cites([f])}." for f in notable]
        if re.search(r"\bnotes?\b", question, re.IGNORECASE):
            opening += [f"{f.text[:-1]} [{f.id}]." for f in context.facts if f.field.startswith("notes.")]
        opening += [f"{f.text.rstrip('.')} [{f.id}]." for f in context.facts if f.field.startswith("fusion")]
    elif positives and kind in ("next_steps", "specialist", "urgency"):
        opening.append(
            f"The model calls {_listed([str(f.label) for f in positives])} positive {_cites(positives)}."
        )
    return opening


def _cites(facts: list[Fact]) -> str:
    return "".join(f"[{f.id}]" for f in facts)


def _listed(names: list[str]) -> str:
    names = [n.replace("_", " ") for n in names]
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"


def _near_repeat(sentence: CheckedSentence, earlier: CheckedSentence) -> bool:
    """The same thing said again. Statements of different analysis facts share their wording
    ("X: model probability ..."), so only sentences resting on passages can repeat one another."""
    if all(e.startswith("A") for e in sentence.evidence):
        return False
    return near_repeat(sentence.text, earlier.text, NEAR_REPEAT)


def _stems(text: str) -> set[str]:
    return {stem(w) for w in _WORD.findall(text.lower())}


def _millimetres(match: re.Match[str]) -> float:
    value = float(match.group(1))
    return value * 10 if match.group(2).lower().startswith("c") else value


def _in_band(heading: str, size: float) -> bool:
    """Whether a heading's size band ("smaller than 6 mm", "6 to 8 mm", "6 mm or larger") holds
    ``size``; other spellings in parentheses are left aside."""
    text = re.sub(r"\([^)]*\)", " ", heading.lower()).replace("–", "-")
    number = r"(\d+(?:\.\d+)?)\s*mm"
    between = re.search(rf"(\d+(?:\.\d+)?)\s*(?:to|-)\s*{number}", text)
    if between:
        return float(between.group(1)) <= size <= float(between.group(2))
    if below := re.search(rf"(?:<|smaller than|less than|under|below)\s*{number}", text):
        return size < float(below.group(1))
    if above := re.search(rf"(?:>|larger than|more than|greater than|over|above)\s*{number}", text):
        return size > float(above.group(1))
    if at_least := re.search(rf"{number} or (?:larger|more|greater|bigger)", text):
        return size >= float(at_least.group(1))
    return False


def _articles(knowledge: KnowledgeBase) -> list[Article]:
    return [knowledge.article(document.id) for document in knowledge.documents()]


_TARGETS_CACHE: dict[tuple[tuple[str, str], ...], SectionTargets] = {}


def _section_targets(knowledge: KnowledgeBase) -> SectionTargets:
    """The knowledge base's section targets, built once for each state of its documents (a server
    makes a Conversation per request)."""
    key = tuple((d.id, d.sha256) for d in knowledge.documents())
    if key not in _TARGETS_CACHE:
        _TARGETS_CACHE.clear()
        _TARGETS_CACHE[key] = SectionTargets(_articles(knowledge))
    return _TARGETS_CACHE[key]


def _clean(passages: list[Passage]) -> list[Passage]:
    """Each chunk once; sentences that try to instruct the assistant removed (they are data)."""
    seen: set[str] = set()
    cleaned = []
    for passage in passages:
        if passage.chunk.id in seen:
            continue
        seen.add(passage.chunk.id)
        kept = [s for s in split_sentences(passage.chunk.text) if not safety.is_instruction(s)]
        if kept:
            cleaned.append(replace(passage, chunk=replace(passage.chunk, text=" ".join(kept))))
    return cleaned


def _web_passage(title: str, url: str, text: str) -> Passage:
    chunk = Chunk(id=f"web:{url}", document="web", title=title, section="web", text=text, audience="both")
    source = ArticleSource(id=1, title=title, publisher="web search", url=url)
    return Passage(chunk, 1.0, None, None, [source], url)
