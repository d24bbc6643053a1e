"""What kind of answer a question asks for, read from its words.

The kind decides which knowledge-base sections can answer it (``SECTION_AFFINITY``) and, with an
analysis in focus, whether the answer opens with the model's result. The first pattern that
matches wins, so the more specific kinds come first: "what does the heatmap show" is about
Sahay's outputs, not the analysis; "what does BI-RADS 4 mean" is a category, not a definition.

Example:
    >>> question_kind("Who should get screened for lung cancer with low-dose CT?")
    'criteria'
    >>> question_kind("What can cause pulmonary edema?")
    'causes'
"""

from __future__ import annotations

import re
from typing import Literal

QuestionKind = Literal[
    "analysis",
    "sahay_output",
    "category",
    "criteria",
    "causes",
    "first_imaging",
    "next_steps",
    "specialist",
    "urgency",
    "prognosis",
    "definition",
    "general",
]

ANALYSIS_QUESTION = (
    r"\b(?:is|are|was|were|does|do|did)\s+(?:(?:the|this|my|her|his|their|these|that)\s+)?"
    r"(?:(?:chest\s+)?(?:x-?ray|image|scan|results?|study|film|radiograph|mammogram)|everything|it|this|that|all)"
    r"\s+(?:(?:look|looks|seem|seems|appear|appears)\s+)?(?:completely\s+|totally\s+|all\s+)?"
    r"(?:normal|abnormal|ok|okay|fine|clear|healthy|alright|all right)\b(?!\s+(?:to|for|if)\b)"
    r"|\b(?:anything|something) (?:wrong|abnormal)\b"
    r"|\bwhat(?:'s| is) wrong\b"
    r"|\b(?:summari[sz]e|summary|overview)\b"
    r"|\bwhat (?:did|does|do) (?:the |this |my )?"
    r"(?:analysis|model|sahay|ai|computer|x-?ray|image|scan|film|result)s? "
    r"(?:find|found|show|say|see|detect|indicate|mean)"
    r"|\b(?:findings?|results?) (?:of|from|on) (?:the |this |my )?(?:analysis|model|x-?ray|image|scan|film)"
    r"|\bwhat (?:is|are) (?:the )?(?:findings?|results?)\b"
    r"|\b(?:indicate|show|shows|found|find|detected|results?)\b.*\b(?:x-?ray|image|scan|film|analysis)\b"
    r"|\bwhat (?:is|does) (?:this|the) (?:x-?ray|image|scan|result)"
    r"|\b(?:do|does|did) (?:i|she|he|they|the patient) have\b"
    r"|\b(?:the|this|my|her|his) (?:clinical )?notes?\b"
    r"|\bhow (?:sure|confident|certain)\b"
    r"|\bare (?:any of )?(?:my|her|his|their) \w+ (?:broken|enlarged|collapsed|damaged)"
)
"""A question about the result in focus: find, show, summarise, normal?, what's wrong."""

NORMAL_QUESTION = ANALYSIS_QUESTION.split("|\\bwhat(?:'s| is) wrong")[0]
"""Only whether the image is normal."""

_KINDS: list[tuple[QuestionKind, str]] = [
    (
        "sahay_output",
        r"\b(?:heat ?maps?|saliency|grad-?cam|highlighted (?:area|region)s?|colou?red (?:area|region)s?)"
        r"|\bprobabilit(?:y|ies)\b|\bscores? of 0?\.\d|\b0\.\d+\b|\bcalibrat|\bthresholds?\b"
        r"|\bout[- ]of[- ]domain\b|\b(?:refuse[sd]?|reject(?:s|ed)?|won't analy[sz]e|not made for)\b"
        r"|\b(?:notes?|report) (?:are |is )?(?:combined|fused)|\bfusion\b|\bhow (?:does|did) sahay\b",
    ),
    (
        "specialist",
        r"\b(?:specialist|which doctor|what kind of doctor|who should (?:she|he|i|they|we) see|"
        r"refer|referral)\b",
    ),
    (
        "criteria",
        r"\b(?:eligib\w*|qualif(?:y|ies)|criteria|who should (?:get|be|have)|who (?:is|are|gets?) "
        r"(?:screened|eligible)|should i (?:get|be|have) (?:screened|a screening)|at what age|"
        r"what age|how often|when (?:should|to) (?:start|stop))\b",
    ),
    (
        "category",
        r"\b(?:bi-?rads|lung-?rads|li-?rads|ti-?rads|pi-?rads|curb-?65|crb-?65|wells|perc|category|"
        r"categories|grade|stage|score)\b",
    ),
    ("causes", r"\b(?:cause[sd]?|causing|differential|due to|why (?:would|does|do|might)|reasons? for)\b"),
    (
        "first_imaging",
        r"\b(?:first|initial|best|right|appropriate|which|what) (?:-?line )?(?:imaging|test|scan|exam)\b"
        r"|\bimaging (?:test )?(?:for|of choice)\b",
    ),
    (
        "urgency",
        r"\b(?:urgent|emergency|how serious|is (?:it|this) serious|how soon|dangerous|life.threatening)\b",
    ),
    (
        "next_steps",
        r"\b(?:next|what (?:should|do|can) (?:we|i|she|he|they) do|follow.?up|management|manage|what now|"
        r"treat|treatment|recommended|what happens now)",
    ),
    (
        "prognosis",
        r"\b(?:prognosis|survival|survive|life expectancy|outlook|chance of|kill (?:me|her|him|them)|"
        r"(?:will|am) (?:i|she|he) (?:die|dying)|fatal|deadly)\b",
    ),
    ("analysis", ANALYSIS_QUESTION),
    (
        "definition",
        r"\b(?:what (?:is|are|does|do)|what's|meaning|mean|means|define|definition|explain|plain words|"
        r"tell me about)\b",
    ),
]

SECTION_AFFINITY: dict[QuestionKind, str] = {
    "definition": r"^(?:what (?:it|they) (?:is|are)|definition|overview|in plain words)\b",
    "category": r"\b(?:category|bi-?rads|lung-?rads|curb|score|stage|grade|fleischner)\b",
    "criteria": r"\b(?:eligib|who (?:is|should)|how often|when to stop|criteria|age)",
    "causes": r"\b(?:causes?|differential)\b",
    "first_imaging": r"\b(?:first|initial) (?:imaging|test)|\bimaging test for\b",
    "next_steps": r"\b(?:next steps|management|follow-?up|fleischner|what happens next)\b",
    "specialist": r"\bspecialist",
    "urgency": r"\burgent",
    "sahay_output": r"\b(?:heatmap|probabilit|calibrat|threshold|refuse|out-of-domain|notes)",
}
"""Headings of the sections that answer each kind (regular expressions, case-insensitive)."""


def question_kind(question: str) -> QuestionKind:
    for kind, pattern in _KINDS:
        if re.search(pattern, question, re.IGNORECASE):
            return kind
    return "general"


def about_the_image(question: str) -> bool:
    return re.search(ANALYSIS_QUESTION, question, re.IGNORECASE) is not None


def asks_if_normal(question: str) -> bool:
    return re.search(NORMAL_QUESTION, question, re.IGNORECASE) is not None
