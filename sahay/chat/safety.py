"""Guardrails: what the assistant must say first, what it must not do, and text it must not obey.

The checks are plain patterns, kept here in one place so that they can be read and tested:

* **red flags** in the question or among positive findings put urgent-care advice first;
* **dosing and prescribing** requests are declined (general information still follows);
* **demands for a diagnosis** get the model's output, never a verdict;
* **prognosis** questions get cited population statistics with their caveats, never an estimate
  for this patient;
* **off-topic** requests are declined politely;
* **instructions inside notes or documents** ("ignore previous instructions...") are data: such
  sentences are dropped from the context before any backend sees it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_RED_FLAG_QUESTION = re.compile(
    r"can'?t breathe|cannot breathe|unable to breathe|struggling to breathe|short of breath at rest|"
    r"cough(ing)? (up )?blood|blood in (my|the) (sputum|phlegm)|chest pain|blue lips|turning blue|"
    r"tension pneumothorax|collapsed lung|passed out|fainted|unconscious|choking",
    re.IGNORECASE,
)
RED_FLAG_FINDINGS = frozenset({"Pneumothorax"})
"""Positive findings that can be emergencies whatever the question: the reader is told once that
the image needs prompt review. Emergency-care advice is for someone describing symptoms now."""

_DOSING = re.compile(
    r"\b(dose|doses|dosage|dosing|mg|milligram|prescri\w*|how much .{0,30}\b(take|give)|"
    r"which (drug|medicine|medication|antibiotic|pill)s? should)\b",
    re.IGNORECASE,
)
# Doses that are imaging, not medicine: "low-dose CT" screening, a scan's radiation dose, the dose
# of contrast. Taken out before the dosing check, so that screening questions (and the passages that
# answer them) are not declined as prescribing.
_IMAGING_DOSE = re.compile(
    r"\blow[- ]dose\b|\b(radiation|effective|contrast|absorbed|skin|glandular|mean glandular) doses?\b|"
    r"\bdoses? of (radiation|contrast|x-?rays?)\b|"
    r"\bdoses? (from|of|in|for) (a |an |the |my |this |one )?"
    r"(ct|cat|x-?rays?|scans?|mammogra\w*|imaging|radiograph\w*|tomosynthesis|screening)\b",
    re.IGNORECASE,
)
_DIAGNOSIS_DEMAND = re.compile(
    r"\b(do i have|does (he|she|the patient) have|"
    r"is (it|this) (definitely )?(cancer|malignant|tb|tuberculosis)|"
    r"am i (sick|dying)|confirm (the )?diagnosis)\b",
    re.IGNORECASE,
)
_PROGNOSIS = re.compile(
    r"\b(prognosis|survival|survive|life expectancy|how long (will|do|does) .{0,20}live|"
    r"chance of (dying|death|cure)|will (i|she|he) die|outlook)\b",
    re.IGNORECASE,
)
_INJECTION = re.compile(
    r"ignore (all |any |the )?(previous|prior|above|earlier) (instructions|prompts?|rules)|"
    r"disregard (the |all )?(previous|above|system)|you are now|system prompt|new instructions:|"
    r"act as (a|an) |jailbreak",
    re.IGNORECASE,
)
_ABOUT_ANALYSIS = re.compile(
    r"\b(this|the|my|her|his|these) (x-?ray|image|scan|result|results|finding|findings|report|analysis|"
    r"film|study|heatmap|probability)\b|\b(next|specialist|urgent|refer|follow.?up|mean|indicate|show)\b",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class QuestionFlags:
    red_flag: bool
    dosing: bool
    diagnosis_demand: bool
    prognosis: bool
    about_analysis: bool


def read_question(question: str) -> QuestionFlags:
    return QuestionFlags(
        red_flag=bool(_RED_FLAG_QUESTION.search(question)),
        dosing=is_dosing(question),
        diagnosis_demand=bool(_DIAGNOSIS_DEMAND.search(question)),
        prognosis=bool(_PROGNOSIS.search(question)),
        about_analysis=bool(_ABOUT_ANALYSIS.search(question)),
    )


def is_instruction(text: str) -> bool:
    """Text that tries to instruct the assistant; inside notes and documents it is never obeyed."""
    return bool(_INJECTION.search(text))


def is_dosing(text: str) -> bool:
    """A request for (or statement of) a medicine's dose; imaging doses do not count."""
    return bool(_DOSING.search(_IMAGING_DOSE.sub(" ", text)))


# Fixed sentences. They carry no facts or numbers, so they need no citation.
URGENT_LEAD = "If this is happening now, seek emergency care immediately: call your local emergency number."
URGENT_REVIEW = (
    "The model flags a finding that can be an emergency, so a clinician should review this image "
    "without delay."
)
DOSING_DECLINED = (
    "I cannot advise on medicines, doses or prescriptions; the treating clinician or pharmacist decides."
)
NO_DIAGNOSIS = (
    "This is not a diagnosis: the model's output is a suggestion that a qualified clinician must confirm."
)
PROGNOSIS_CAVEAT = (
    "Statistics describe groups of people diagnosed in the past; they cannot predict one person's outcome."
)
OFF_TOPIC = (
    "I can only help with questions about medical images, this analysis, and the lung and breast topics in "
    "my knowledge base."
)
NOT_FOUND = "I found nothing in the analysis or the knowledge base that answers this; please ask a clinician."
NO_ARTICLE = (
    "The knowledge base has no article about the flagged findings, so any passages quoted here are general "
    "information, not advice about these findings."
)
POLICY_SENTENCES = frozenset(
    {
        URGENT_LEAD,
        URGENT_REVIEW,
        DOSING_DECLINED,
        NO_DIAGNOSIS,
        PROGNOSIS_CAVEAT,
        OFF_TOPIC,
        NOT_FOUND,
        NO_ARTICLE,
    }
)
