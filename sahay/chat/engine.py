"""The chat: a conversation about one analysis, answered from it and from cited passages.

Each question goes through the same steps, whatever backend writes the answer:

1. read the question for guardrails (``sahay.chat.safety``) and its intent;
2. gather the context: the analysis facts, the knowledge-base sections that answer that intent
   for each positive finding (its "Usual next steps", say), and the best passages for the
   question; sentences that try to instruct the assistant are dropped from passages;
3. decline off-topic requests; otherwise let the backend write the answer;
4. verify every sentence (``sahay.chat.verify``) as it is written and put the fixed guardrail
   sentences first; a question whether the image is normal gets the model's positive findings
   first. ``on_token`` receives the verified sentences only, and in order they make the answer's
   text: a sentence that fails is never shown, even for a moment;
5. give the decision-support disclaimer once a conversation.

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
from sahay.chat.context import Context, Fact, analysis_facts
from sahay.chat.verify import CheckedSentence, SentenceStream, check_sentence, split_sentences
from sahay.chat.websearch import ExaSearch, WebSearch
from sahay.config import Settings, get_settings
from sahay.errors import BadInput
from sahay.knowledge.corpus import ArticleSource
from sahay.knowledge.index import Chunk, KnowledgeBase, Passage

Audience = Literal["clinician", "patient"]
Intent = Literal["findings", "next_steps", "specialist", "urgency", "prognosis", "general"]
MAX_FINDINGS = 3
PASSAGES_PER_QUESTION = 3
URGENT_ARTICLE = "urgent-symptoms"
ON_TOPIC_SIMILARITY = 0.3
"""A question whose closest passage is less similar than this is off topic (measured: medical
questions score 0.4 to 0.8, "tell me a joke" 0.16)."""

_NORMAL_QUESTION = (
    r"\b(?:is|are|was|were|does|do|did)\s+(?:(?:the|this|my|her|his|their|these|that)\s+)?"
    r"(?:(?:chest\s+)?(?:x-?ray|image|scan|results?|study|film|radiograph|mammogram)|everything|it|this|that|all)"
    r"\s+(?:(?:look|looks|seem|seems|appear|appears)\s+)?(?:completely\s+|totally\s+|all\s+)?"
    r"(?:normal|abnormal|ok|okay|fine|clear|healthy|alright|all right)\b(?!\s+(?:to|for|if)\b)"
    r"|\b(?:anything|something) (?:wrong|abnormal)\b"
)
"""A question whether the image is normal: the answer names the model's positive findings first."""

_INTENTS: list[tuple[Intent, str]] = [
    ("specialist", r"\b(specialist|which doctor|who should (she|he|i|they) see|refer|referral)\b"),
    ("urgency", r"\b(urgent|emergency|serious|how soon|worried|dangerous|life.threatening)\b"),
    ("next_steps", r"\b(next|what (should|do) we do|follow.?up|management|what now|treat)"),
    ("prognosis", r"\b(prognosis|survival|survive|life expectancy|outlook|chance of)\b"),
    ("findings", _NORMAL_QUESTION),
    (
        "findings",
        r"\b(indicate|show|shows|found|find|result|results|mean|means)\b.*\b(x-?ray|image|scan|this)\b"
        r"|\bwhat (is|does) (this|the) (x-?ray|image|scan|result)",
    ),
]
_SECTION_FOR: dict[str, str] = {
    "findings": "What it is",
    "next_steps": "Usual next steps",
    "specialist": "Which specialist",
    "urgency": "How urgent is it",
}


@dataclass
class Answer:
    text: str
    sentences: list[CheckedSentence]
    context: Context
    intent: Intent
    backend: str
    flags: dict[str, bool]
    dropped: list[CheckedSentence] = field(default_factory=list)
    disclaimer: str | None = None

    def citations(self) -> list[dict[str, Any]]:
        """The passages the answer cites, numbered as in the text."""
        cited = {e for s in self.sentences for e in s.evidence if not e.startswith("A")}
        rows = []
        for number, passage in enumerate(self.context.passages, start=1):
            if str(number) in cited:
                rows.append(
                    {
                        "id": number,
                        "title": passage.chunk.title,
                        "section": passage.chunk.section,
                        "document": passage.chunk.document,
                        "sources": [s.model_dump() for s in passage.sources],
                        "passage": passage.chunk.text,
                    }
                )
        return rows

    def to_dict(self) -> dict[str, Any]:
        facts = {f.id: f for f in self.context.facts}
        return {
            "answer": self.text,
            "intent": self.intent,
            "backend": self.backend,
            "flags": self.flags,
            "sentences": [
                {"text": s.text, "evidence": [_evidence(e, facts, self.context) for e in s.evidence]}
                for s in self.sentences
            ],
            "citations": self.citations(),
            "removed": [{"text": s.text, "problem": s.problem} for s in self.dropped],
            "disclaimer": self.disclaimer,
        }


def _evidence(marker: str, facts: dict[str, Fact], context: Context) -> dict[str, Any]:
    if marker.startswith("A"):
        fact = facts[marker]
        return {"type": "analysis", "id": marker, "field": fact.field, "text": fact.text}
    passage = context.passage(int(marker))
    assert passage is not None
    return {
        "type": "passage",
        "id": int(marker),
        "document": passage.chunk.document,
        "text": passage.chunk.text,
    }


def detect_intent(question: str) -> Intent:
    for intent, pattern in _INTENTS:
        if re.search(pattern, question, re.IGNORECASE):
            return intent
    return "general"


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

    def ask(self, question: str, on_token: TokenCallback | None = None) -> Answer:
        question = question.strip()
        if not question:
            raise BadInput("the question is empty")
        flags = safety.read_question(question)
        intent = detect_intent(question)
        context = self._context(question, intent, flags)
        positives = {f.label for f in self.analysis.positive_findings} if self.analysis else set()
        # Emergency advice answers symptoms described now; a flagged finding on the film is said once
        # per conversation, to whoever reviews it, not opened on every answer.
        red_flag = flags.red_flag
        urgent_review = bool(positives & safety.RED_FLAG_FINDINGS) and not self.urgent_review_given
        closest = max((p.dense_similarity or 0.0 for p in context.passages), default=0.0)
        on_topic = (flags.about_analysis and self.analysis is not None) or closest >= ON_TOPIC_SIMILARITY
        lead: list[str] = []
        if red_flag:
            lead.append(safety.URGENT_LEAD)
        elif urgent_review:
            lead.append(safety.URGENT_REVIEW)
        if flags.dosing:
            lead.append(safety.DOSING_DECLINED)
        if flags.diagnosis_demand:
            lead.append(safety.NO_DIAGNOSIS)
        if context.uncovered and len(context.uncovered) == len(positives):
            lead.append(safety.NO_ARTICLE)  # what retrieval finds is not about these findings
        say = _Speaker(on_token)
        if not on_topic and not red_flag:
            sentences = [CheckedSentence(safety.OFF_TOPIC)]
            say(safety.OFF_TOPIC)
            return self._finish(question, sentences, [], context, intent, flags, red_flag, off_topic=True)
        for text in lead:
            say(text)
        self.urgent_review_given = self.urgent_review_given or safety.URGENT_REVIEW in lead
        body: list[CheckedSentence] = []

        def accept(sentence: CheckedSentence) -> None:
            if sentence.text not in lead:
                body.append(sentence)
                say(sentence.text)

        dropped: list[CheckedSentence] = []
        if re.search(_NORMAL_QUESTION, question, re.IGNORECASE):
            opening = _positive_findings_first(context)
            if opening is not None:
                checked = check_sentence(opening, context)
                if checked.problem is None:
                    accept(checked)
                else:
                    dropped.append(checked)
        stream = SentenceStream(context, on_verified=accept)
        raw = self.backend.answer(context, self.history, intent, stream.feed)
        if raw.startswith(stream.raw):  # a backend that streamed less than it returned (or nothing)
            stream.feed(raw[len(stream.raw) :])
        dropped += stream.finish().dropped
        if flags.prognosis:
            body.append(CheckedSentence(safety.PROGNOSIS_CAVEAT))
            say(safety.PROGNOSIS_CAVEAT)
        if not body:
            body = [CheckedSentence(safety.NOT_FOUND)]
            say(safety.NOT_FOUND)
        sentences = [CheckedSentence(text) for text in lead] + body
        return self._finish(question, sentences, dropped, context, intent, flags, red_flag)

    def _finish(
        self,
        question: str,
        sentences: list[CheckedSentence],
        dropped: list[CheckedSentence],
        context: Context,
        intent: Intent,
        flags: safety.QuestionFlags,
        red_flag: bool,
        off_topic: bool = False,
    ) -> Answer:
        text = " ".join(s.text for s in sentences)
        answer = Answer(
            text=text,
            sentences=sentences,
            context=context,
            intent=intent,
            backend=self.backend.name,
            flags={
                "red_flag": red_flag,
                "dosing_declined": flags.dosing,
                "no_diagnosis": flags.diagnosis_demand,
                "prognosis": flags.prognosis,
                "off_topic": off_topic,
            },
            dropped=dropped,
            disclaimer=None if self.disclaimer_given else DISCLAIMER,
        )
        self.disclaimer_given = True
        self.history.append(Turn(question, text))
        return answer

    def _context(self, question: str, intent: Intent, flags: safety.QuestionFlags) -> Context:
        context = Context(question, self.audience)
        positives: list[str] = []
        if self.analysis is not None:
            context.facts = analysis_facts(self.analysis)
            positives = [f.label for f in self.analysis.positive_findings][:MAX_FINDINGS]
        passages: list[Passage] = []
        if flags.red_flag:
            passages += self.knowledge.document_passages(URGENT_ARTICLE)[:2]
        section = _SECTION_FOR.get(intent)
        if section and self.audience == "patient" and intent == "findings":
            section = "In plain words"
        if section:
            for label in positives:
                articles = self.knowledge.articles_for_finding(label)[:1]
                if not articles:
                    context.uncovered.append(label)
                for article in articles:
                    passages += self.knowledge.section_passages(article.id, section)
        query = question if not positives else f"{question} {' '.join(positives)}"
        passages += self.knowledge.search(query, k=PASSAGES_PER_QUESTION, audience=self._audience_filter())
        if self.web is not None:
            passages += [_web_passage(r.title, r.url, r.text) for r in self.web.search(question)]
        context.passages = _clean(passages)
        return context

    def _audience_filter(self) -> str | None:
        return "patient" if self.audience == "patient" else None


class _Speaker:
    """Passes sentences to ``on_token`` joined as ``Answer.text`` joins them, so that the streamed
    text, put together, is the answer's text."""

    def __init__(self, on_token: TokenCallback | None) -> None:
        self.on_token = on_token
        self.started = False

    def __call__(self, sentence: str) -> None:
        if self.on_token is not None:
            self.on_token(f" {sentence}" if self.started else sentence)
        self.started = True


def _positive_findings_first(context: Context) -> str | None:
    """For "is the image normal?": the findings the model calls positive, each cited, or None."""
    positives = [f for f in context.facts if f.positive and f.field == f"findings[{f.label}]"]
    if not positives:
        return None
    names = [str(f.label) for f in positives]
    listed = names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"
    citations = " ".join(f"[{f.id}]" for f in positives)
    return f"The model does not read this image as normal: it calls {listed} positive {citations}."


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
