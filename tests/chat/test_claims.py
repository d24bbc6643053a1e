"""What a sentence claims, checked against what it cites, and the stream showing verified sentences
only. The answers come from an OpenAI-compatible server started on 127.0.0.1 (``fake_servers``)."""

from __future__ import annotations

import re
from pathlib import Path

from sahay.analysis import Analysis
from sahay.chat.backends.openai_compatible import OpenAICompatible
from sahay.chat.context import Context, analysis_facts
from sahay.chat.engine import Answer, Conversation
from sahay.chat.verify import SentenceStream, verify
from sahay.knowledge.index import KnowledgeBase
from tests.chat.conftest import chest_analysis
from tests.chat.fake_servers import fake_openai_server


def _fact(analysis: Analysis, label: str) -> str:
    """The id of the fact that states the model's call on ``label``."""
    return next(f.id for f in analysis_facts(analysis) if f.field == f"findings[{label}]")


def _ask(knowledge: KnowledgeBase, analysis: Analysis, question: str, **script: object) -> tuple[Answer, str]:
    """The answer, and the text ``on_token`` received, put together."""
    with fake_openai_server() as llm:
        for name, value in script.items():
            setattr(llm, name, value)
        chat = Conversation(analysis, knowledge=knowledge, backend=OpenAICompatible(llm.url, "test-model"))
        tokens: list[str] = []
        answer = chat.ask(question, on_token=tokens.append)
    return answer, "".join(tokens)


def test_calling_the_image_normal_against_a_positive_finding_is_dropped(knowledge: KnowledgeBase) -> None:
    analysis = chest_analysis(Effusion=0.9, Cardiomegaly=0.7)
    cardiomegaly = _fact(analysis, "Cardiomegaly")
    claim = f"The image is normal and shows no positive findings [{cardiomegaly}]."
    answer, streamed = _ask(knowledge, analysis, "What does this X-ray show?", extra=claim)
    assert "no positive findings" not in answer.text and "no positive findings" not in streamed
    assert [(s.text, s.problem) for s in answer.dropped] == [
        (
            claim,
            f"calls the image normal, but [{cardiomegaly}] is a finding the model calls positive "
            "(Cardiomegaly)",
        )
    ]
    assert answer.sentences and streamed == answer.text


def test_calling_a_negative_finding_present_is_dropped(knowledge: KnowledgeBase) -> None:
    analysis = chest_analysis(Effusion=0.9)
    nodule = _fact(analysis, "Nodule")
    claims = [
        f"The X-ray shows a nodule [{nodule}].",
        f"The model calls Nodule positive [{nodule}].",
        f"There is no nodule [{nodule}].",  # agrees with the fact: kept
    ]
    answer, streamed = _ask(knowledge, analysis, "What does this X-ray show?", extra=" ".join(claims))
    problem = f"says Nodule is present, but [{nodule}] is the model calling it negative"
    assert [(s.text, s.problem) for s in answer.dropped] == [(claims[0], problem), (claims[1], problem)]
    assert claims[2] in answer.text
    assert "shows a nodule" not in streamed and "calls Nodule positive" not in streamed


def test_disposition_advice_needs_a_cited_passage_that_supports_it(
    knowledge: KnowledgeBase, tmp_path: Path
) -> None:
    analysis = chest_analysis(Effusion=0.82)
    question = "Can a patient with a small pleural effusion be discharged home?"
    unsupported = "The patient can be discharged [A1]."
    answer, streamed = _ask(knowledge, analysis, question, extra=unsupported)
    assert [(s.text, s.problem) for s in answer.dropped] == [
        (unsupported, "gives disposition advice that no cited passage supports")
    ]
    assert "discharged" not in streamed and "discharged" not in answer.text

    document = tmp_path / "effusion-clinic.md"
    document.write_text(
        "# Effusion clinic\n\nA patient with a small pleural effusion and no breathlessness can be "
        "discharged home, with a review by the family doctor.\n"
    )
    (added,) = knowledge.add([document])
    cited: list[str] = []

    def cite_the_clinic(prompt: str) -> str:
        found = re.search(r"^\[(\d+)\] Effusion clinic", prompt, re.MULTILINE)
        cited.extend(found.groups() if found else [])
        return f"The patient can be discharged [{found.group(1)}]." if found else ""

    try:
        supported, streamed = _ask(knowledge, analysis, question, reply=cite_the_clinic)
    finally:
        knowledge.remove(added.id)
    assert cited, "the clinic's passage is in the context"
    # Shown, with its citation renumbered to the clinic document's source.
    clinic = next(c["id"] for c in supported.citations() if c["document"] == added.id)
    sentence = f"The patient can be discharged [{clinic}]."
    assert sentence in [s.text for s in supported.sentences] and sentence in streamed
    assert not supported.dropped


def test_on_token_receives_the_verified_sentences_only(knowledge: KnowledgeBase) -> None:
    analysis = chest_analysis(Effusion=0.9)
    effusion = _fact(analysis, "Effusion")
    script = (
        f"The model calls Effusion positive [{effusion}]. "
        f"There is no effusion [{effusion}]. "
        "It affects 9731 people [1]. "
        f"No follow-up is needed [{effusion}]. "
        f"The model's probability for Effusion is at or above its threshold [{effusion}]."
    )
    answer, streamed = _ask(knowledge, analysis, "What should we do next?", extra=script)
    assert streamed == answer.text
    assert [s.text for s in answer.dropped] == [
        f"There is no effusion [{effusion}].",
        "It affects 9731 people [1].",
        f"No follow-up is needed [{effusion}].",
    ]
    for sentence in answer.dropped:
        assert sentence.text.rstrip(".").split(" [")[0] not in streamed
    assert f"The model calls Effusion positive [{effusion}]." in streamed
    assert streamed.endswith(f"at or above its threshold [{effusion}].")

    # The connection drops in the middle of a sentence: what was shown is still verified only.
    cut = script.index("There is no") + len("There is no eff")
    answer, streamed = _ask(knowledge, analysis, "What should we do next?", extra=script, cut_after=cut)
    assert streamed == answer.text
    assert "There is no eff" not in streamed and "There is no eff" in answer.dropped[-1].text
    assert f"The model calls Effusion positive [{effusion}]." in streamed


def test_the_stream_checks_each_sentence_as_the_whole_answer_would_be_checked() -> None:
    analysis = chest_analysis(Effusion=0.9)
    context = Context("Is the image normal?", "clinician", facts=analysis_facts(analysis))
    e = _fact(analysis, "Effusion")
    text = (
        f"The model calls Effusion positive. [{e}] The image is normal [{e}]. "
        f"Effusion: model probability 0.90 [{e}].\nIts citation is on the next line.\n[A1]\n"
        "The patient can go home [A1]. Invented [A19]"
    )
    shown: list[str] = []
    stream = SentenceStream(context, on_verified=lambda s: shown.append(s.text))
    for character in text:  # one character at a time; a citation after the full stop still counts
        stream.feed(character)
        assert all(s in [c.text for c in verify(text, context).sentences] for s in shown)
    streamed = stream.finish()
    whole = verify(text, context)
    assert (
        shown
        == [s.text for s in streamed.sentences]
        == [s.text for s in whole.sentences]
        == [
            f"The model calls Effusion positive [{e}].",
            f"Effusion: model probability 0.90 [{e}].",
            "Its citation is on the next line [A1].",
        ]
    )
    assert (
        [s.problem for s in streamed.dropped]
        == [s.problem for s in whole.dropped]
        == [
            f"calls the image normal, but [{e}] is a finding the model calls positive (Effusion)",
            "gives disposition advice that no cited passage supports",
            "cites [A19], which is not in the context",
        ]
    )
