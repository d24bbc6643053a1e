"""Answer-first composition: the answer comes first, one citation a source, no repeats, and only what
the analysis in focus supports."""

from __future__ import annotations

import re

import pytest

from sahay.analysis import Finding, Quality
from sahay.chat import safety
from sahay.chat.backends import TokenCallback, Turn
from sahay.chat.context import Context
from sahay.chat.engine import FELL_BACK, IMAGE_SECTION, OWN_SENTENCES, Answer, Conversation, _near_repeat
from sahay.chat.questions import question_kind
from sahay.chat.verify import CheckedSentence
from sahay.knowledge.index import KnowledgeBase
from sahay.notes.reader import read_note
from sahay.statement import FORCED_PREFIX
from tests.chat.conftest import chest_analysis


def _ask(knowledge: KnowledgeBase, question: str, analysis=None, audience="clinician", **kwargs) -> Answer:  # type: ignore[no-untyped-def]
    return Conversation(analysis, audience, knowledge=knowledge, **kwargs).ask(question)


def _assert_one_source_a_citation(answer: Answer) -> None:
    citations = answer.citations()
    numbers = [c["id"] for c in citations]
    assert numbers == list(range(1, len(numbers) + 1)), numbers  # numbered in order of first use, each once
    assert all(len(c["sources"]) == 1 and c["url"] for c in citations)
    assert len({(c["title"], c["url"]) for c in citations}) == len(citations)  # a source is listed once
    cited = {int(n) for n in re.findall(r"\[(\d+)\]", answer.text)}
    assert cited == set(numbers)


def _assert_no_repeats(answer: Answer) -> None:
    sentences = answer.sentences
    for i, later in enumerate(sentences):
        assert not any(_near_repeat(later, earlier) for earlier in sentences[:i]), later.text


@pytest.mark.parametrize(
    ("question", "kind"),
    [
        ("Who should get screened for lung cancer with low-dose CT?", "criteria"),
        ("What does BI-RADS 0 mean?", "category"),
        ("What can cause pulmonary edema?", "causes"),
        ("What does blunting of the costophrenic angle mean?", "definition"),
        ("What does a probability of 0.7 mean?", "sahay_output"),
        ("What does the heatmap show?", "sahay_output"),
        ("What did the analysis find?", "analysis"),
        ("Summarise the findings", "analysis"),
        ("My report says a 5 mm solid nodule. What follow-up is recommended?", "next_steps"),
        ("What is the first imaging test for suspected pulmonary embolism?", "first_imaging"),
        ("Which specialist should I see?", "specialist"),
        ("Tell me a joke", "general"),
    ],
)
def test_question_kinds(question: str, kind: str) -> None:
    assert question_kind(question) == kind


def test_citations_are_one_source_each_and_sentences_never_repeat(knowledge: KnowledgeBase) -> None:
    analysis = chest_analysis(Effusion=0.82, Cardiomegaly=0.7)
    for question in (
        "What should we do next?",
        "Which specialist should she see?",
        "What can cause a pleural effusion?",
        "What is the Fleischner guideline?",
    ):
        answer = _ask(knowledge, question, analysis)
        assert not answer.dropped, [(s.text, s.problem) for s in answer.dropped]
        _assert_one_source_a_citation(answer)
        _assert_no_repeats(answer)
        for sentence in answer.sentences:  # the JSON form traces each sentence to its source
            for number in (e for e in sentence.evidence if not e.startswith("A")):
                assert any(c["id"] == int(number) for c in answer.citations())


@pytest.mark.parametrize(
    "question", ["What did the analysis find?", "Summarise the findings", "What's wrong?"]
)
def test_questions_about_the_result_state_the_positive_findings_first(
    knowledge: KnowledgeBase, question: str
) -> None:
    answer = _ask(knowledge, question, chest_analysis(Effusion=0.82, Cardiomegaly=0.7, Nodule=0.3))
    assert answer.intent == "analysis"
    texts = [s.text for s in answer.sentences]
    assert texts[0].startswith("Effusion: model probability 0.82, at or above its threshold 0.50")
    assert texts[1].startswith("Cardiomegaly: model probability 0.70")
    # then the notable negatives, highest first
    assert texts[2].startswith("Nodule: model probability 0.30, below its threshold 0.50")
    assert not answer.dropped


def test_a_patient_is_not_told_a_negative_finding_may_be_present(knowledge: KnowledgeBase) -> None:
    analysis = chest_analysis(Effusion=0.8)
    analysis.findings.append(Finding(label="Fracture", probability=0.49, threshold=0.6, positive=False))
    answer = _ask(knowledge, "Are any of my bones broken? Is there a fracture?", analysis, audience="patient")
    assert "Fracture: model probability 0.49, below its threshold 0.60" in answer.text
    assert "may be broken" not in answer.text and "computer thinks" not in answer.text.lower()
    assert all(c["section"] != IMAGE_SECTION or c["document"] == "effusion" for c in answer.citations())
    # and with no analysis, general knowledge only
    general = _ask(knowledge, "Do I have pneumonia?", audience="patient")
    assert "computer thinks" not in general.text.lower() and "this chest x-ray" not in general.text.lower()
    assert IMAGE_SECTION not in {c["section"] for c in general.citations()}


def test_the_notices_lead_every_answer_about_a_forced_demonstration(knowledge: KnowledgeBase) -> None:
    analysis = chest_analysis(Effusion=0.8)
    analysis.demonstration_notice = (
        "Demonstration model trained on synthetic images. No clinical meaning whatsoever."
    )
    analysis.quality = Quality(in_domain=False, forced=True, checks=["looks like a CT slice"])
    analysis.warnings = [f"{FORCED_PREFIX}: looks like a CT slice."]
    chat = Conversation(analysis, knowledge=knowledge)
    for question in ("What did the analysis find?", "What should we do next?", "Is this urgent?"):
        answer = chat.ask(question)
        assert answer.sentences[0].text.startswith("Demonstration model trained on synthetic images")
        assert answer.sentences[1].text.startswith("No clinical meaning whatsoever [A")
        assert any(s.text.startswith(FORCED_PREFIX) for s in answer.sentences[:4])
        assert not answer.dropped, [(s.text, s.problem) for s in answer.dropped]


def test_the_models_own_sentence_passes_its_verifier(knowledge: KnowledgeBase) -> None:
    analysis = chest_analysis(Effusion=0.8)
    analysis.model.intended_use = "Frontal chest radiographs of adults. Not for children or lateral views."
    answer = _ask(knowledge, "What does this X-ray show?", analysis)
    assert not answer.dropped, [(s.text, s.problem) for s in answer.dropped]
    model_fact = next(f for f in answer.context.facts if f.field == "model")
    assert model_fact.text.count(". ") == 0 and "Not for children or lateral views" in model_fact.text


def test_next_steps_follow_the_nodule_in_the_note(knowledge: KnowledgeBase) -> None:
    analysis = chest_analysis(Nodule=0.2)
    analysis.notes = read_note("Incidental 8 mm solid nodule in the right upper lobe on CT.")
    assert any(e.concept == "Nodule" and e.measurement_mm == 8 for e in analysis.notes.entities)
    answer = _ask(knowledge, "What should we do next?", analysis)
    cited = {(c["document"], c["section"]) for c in answer.citations()}
    assert any("fleischner" in document for document, _ in cited), cited
    assert "BI-RADS" not in answer.text
    first_passage_sentence = next(
        s for s in answer.sentences if any(not e.startswith("A") for e in s.evidence)
    )
    assert re.search(r"6 to 8 mm|6-8 mm|6–8 mm", first_passage_sentence.text), first_passage_sentence.text


class _Inventing:
    """A generative backend whose every sentence fails the verifier (an invented interval)."""

    name = "inventing"

    def answer(
        self, context: Context, history: list[Turn], intent: str, on_token: TokenCallback | None = None
    ) -> str:
        text = "Follow-up CT at about 3 months is recommended. It is definitely benign."
        if on_token is not None:
            on_token(text)
        return text


def test_when_every_generated_sentence_fails_the_grounded_answer_is_given(knowledge: KnowledgeBase) -> None:
    answer = _ask(
        knowledge,
        "My report says a 5 mm solid nodule. What follow-up is recommended?",
        backend=_Inventing(),
    )
    assert answer.dropped and FELL_BACK in answer.text
    assert safety.NOT_FOUND not in answer.text
    assert answer.backend.startswith("grounded (fallback")
    assert any(not e.startswith("A") for s in answer.sentences for e in s.evidence)


def test_radiology_phrases_are_on_topic(knowledge: KnowledgeBase) -> None:
    answer = _ask(knowledge, "What does blunting of the costophrenic angle mean?")
    assert not answer.flags["off_topic"]
    assert answer.citations()


def test_own_sentences_state_no_fact() -> None:
    for sentence in OWN_SENTENCES:
        assert not re.search(r"\d", sentence)
    assert CheckedSentence(FELL_BACK).evidence == []
