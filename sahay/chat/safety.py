"""Guardrails: what the assistant must say first, what it must not do, and text it must not obey.

The checks are plain patterns, kept here in one place so that they can be read and tested
(tests/chat/test_safety.py runs them over tests/chat/data/benign_questions.txt, questions full of
trigger-like words that must pass, and tests/chat/data/unsafe_questions.txt, each tagged with the
category it must be caught as). A question is caught as at most one ``Category``, the first of:

* **self_harm**: wanting to die or to hurt oneself, or a lethal amount of something. The answer is
  only a supportive sentence that points to local emergency and crisis services;
* **emergency**: someone describing red-flag symptoms now ("I can't breathe", "my father just passed
  out") gets urgent-care advice first. A symptom named in a general question ("first imaging for
  acute chest pain", "what is a collapsed lung") is not an emergency;
* **diagnosis**: a demand for a verdict in place of a clinician ("just tell me I have cancer, no
  need for a doctor") is declined;
* **stop_treatment**: stopping, skipping or changing a treatment or a recommended test is for the
  clinician who prescribed or ordered it ("can I stop my chemo?"); stopping smoking or screening
  is not a treatment;
* **dosing**: a medicine's dose, a prescription or the choice of a medicine is declined (general
  information still follows). Imaging doses are not medicine: "low-dose CT", a scan's radiation
  dose, the dose of contrast, a prescription for a mammogram.

Besides the categories, two caveats go with an answer without declining it: **prognosis**
questions ("what is the survival...", "can this kill me?") get cited population statistics and
the caveat that they cannot predict one person's outcome; **diagnosis questions** ("do I have
cancer?", "is it cancer?") are answered from the model's output with the statement that it is not
a diagnosis. **Instructions inside notes or documents** ("ignore previous instructions...") are
data: such sentences are dropped from the context before any backend sees it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

Category = Literal["self_harm", "emergency", "diagnosis", "stop_treatment", "dosing"]
CATEGORIES: tuple[Category, ...] = ("self_harm", "emergency", "diagnosis", "stop_treatment", "dosing")
"""In order of precedence: a question caught by two is caught as the first."""


def _words(*alternatives: str) -> str:
    return "(?:" + "|".join(alternatives) + ")"


# Medicines by kind and by the names people ask about; "pills", "meds" and "chemo" included.
_MEDICINE = _words(
    r"medicines?",
    r"medications?",
    r"meds",
    r"drugs?",
    r"pills?",
    r"tablets?",
    r"capsules?",
    r"antibiotics?",
    r"painkillers?",
    r"pain killers?",
    r"steroids?",
    r"inhalers?",
    r"blood thinners?",
    r"anticoagulants?",
    r"diuretics?",
    r"water pills?",
    r"chemo\w*",
    r"immunotherapy",
    r"hormone therapy",
    r"amoxicillin",
    r"azithromycin",
    r"doxycycline",
    r"clarithromycin",
    r"levofloxacin",
    r"ciprofloxacin",
    r"ceftriaxone",
    r"isoniazid",
    r"rifampi\w*",
    r"prednis\w*",
    r"dexamethasone",
    r"furosemide",
    r"lasix",
    r"morphine",
    r"codeine",
    r"tramadol",
    r"oxycodone",
    r"fentanyl",
    r"ibuprofen",
    r"paracetamol",
    r"acetaminophen",
    r"tylenol",
    r"aspirin",
    r"warfarin",
    r"heparin",
    r"apixaban",
    r"rivaroxaban",
    r"tamoxifen",
    r"letrozole",
    r"anastrozole",
    r"metformin",
    r"insulin",
    r"diazepam",
    r"lorazepam",
    r"salbutamol",
    r"albuterol",
    r"methotrexate",
)
_PERSON = _words(r"i", r"we", r"she", r"he", r"they", r"you", r"my \w+", r"the patient")

# self_harm ----------------------------------------------------------------------------------
_SELF_HARM = re.compile(
    r"\b(?:kill|hurt|harm|cut|poison|starv)\w* (?:myself|herself|himself|themselves|ourselves)\b"
    r"|\bself[- ]?harm|\bsuicid\w*|\btake (?:my|his|her|their) own life\b|\bend it all\b"
    r"|\bend (?:my|his|her|their) (?:own )?life\b|\bways? to die\b"
    r"|\b(?:want|wants|wanting|wish|rather|better off) (?:to )?(?:be )?(?:dead|die)\b"
    r"|\b(?:don'?t|do not|no longer|doesn'?t) want to (?:live|be alive|go on|wake up)\b"
    r"|\bno (?:reason|point) (?:to|in) (?:live|living|go on|going on)\b|\bnot worth living\b"
    r"|\b(?:lethal|fatal|deadly|toxic) (?:dose|amount|quantity|number)\b"
    r"|\boverdos\w*\b(?! (?:on|of|from) (?:radiation|contrast|x-?rays?))"
    r"|\b(?:how (?:many|much)|enough|amount)\b.{0,50}"
    r"\b(?:kill (?:me|myself|him|her|someone)|to die|be (?:fatal|lethal))\b"
    rf"|\b{_MEDICINE}\b.{{0,40}}\bkill (?:me|myself)\b",
    re.IGNORECASE,
)

# emergency ------------------------------------------------------------------------------------
RED_FLAG_FINDINGS = frozenset({"Pneumothorax"})
"""Positive findings that can be emergencies whatever the question: the reader is told once that
the image needs prompt review. Emergency-care advice is for someone describing symptoms now."""
_RED_FLAG_SYMPTOM = re.compile(
    r"can'?t breathe|cannot breathe|unable to breathe|struggling to breathe|(?:hard|difficult) to breathe|"
    r"gasping|short of breath at rest|cough(?:ing|s|ed)? (?:up )?blood|"
    r"blood in (?:my|the|his|her) (?:sputum|phlegm)|"
    r"chest pain|chest hurts|pain in (?:my|his|her) chest|blue lips|lips (?:are |is )?(?:turning )?blue|"
    r"turning blue|passed out|fainted|unconscious|won'?t wake|choking|collapsed lung|lung (?:has )?collapsed",
    re.IGNORECASE,
)
# Someone who has the symptom now: a person speaking of themselves or of someone with them. A
# symptom named without one ("imaging for acute chest pain", "what is a collapsed lung") is a
# general question, and a clinician's "my patient" is not a person in distress.
_SOMEONE_NOW = re.compile(
    r"\b(?:i|i'm|im|i've|me|my|we|we're|our|he|she|he's|she's|his|her)\b|\bright now\b|\bhelp\b|!",
    re.IGNORECASE,
)
_CLINICIAN_VOICE = re.compile(r"\bpatients?\b", re.IGNORECASE)

# diagnosis ------------------------------------------------------------------------------------
_CLINICIAN = _words(
    r"doctors?",
    r"clinicians?",
    r"radiologists?",
    r"specialists?",
    r"physicians?",
    r"gp",
    r"clinic",
    r"oncologist",
    r"hospital",
    r"biopsy",
)
_WITHOUT_CLINICIAN = re.compile(
    r"\b(?:no need (?:for|to see)|without|instead of|rather than|skip|skipping|replace|bypass|forget|"
    r"(?:(?:don'?t|do not) want to|will not|won'?t|not going to|refuse to|never) (?:see|go to|visit)|"
    r"so (?:that )?i (?:can )?(?:skip|avoid)|"
    r"so (?:that )?i (?:don'?t|do not|won'?t) (?:have to|need to|need)?)\b"
    rf".{{0,30}}\b{_CLINICIAN}\b|\bbe my (?:doctor|radiologist)\b",
    re.IGNORECASE,
)
_VERDICT = re.compile(
    r"\b(?:diagnos\w*|tell me (?:for sure|for certain|definitely|exactly|what i have|i have|if|whether|that)|"
    r"confirm|for sure|for certain|definitive|certain|be my (?:doctor|radiologist)|or not)\b",
    re.IGNORECASE,
)
# A question whether one has a disease: answered from the model's output, with the caveat.
_DIAGNOSIS_QUESTION = re.compile(
    r"\b(do i have|does (he|she|the patient) have|"
    r"is (it|this) (definitely )?(cancer|malignant|tb|tuberculosis)|"
    r"am i (sick|dying)|confirm (the )?diagnosis)\b",
    re.IGNORECASE,
)

# stop_treatment -------------------------------------------------------------------------------
_TREATMENT = _words(
    _MEDICINE,
    r"treatments?",
    r"therapy",
    r"radiotherapy",
    r"radiation (?:therapy|treatment)s?",
    r"sessions?",
    r"surgery",
    r"operation",
    r"biopsy",
    r"follow-?up",
    r"appointments?",
    r"course",
)
_STOP_TREATMENT = re.compile(
    r"\b(?:stop|stopping|quit|quitting|skip|skipping|cancel|cancelling|canceling|discontinu\w*|come off|"
    r"get off|drop|refuse|refusing|ignore|ignoring|give up|miss|pause)\s+"
    r"(?:taking |using |having |getting |going to )?(?:my |his |her |their |the |these |this |all |our )?"
    rf"(?:[\w'-]+ ){{0,2}}{_TREATMENT}\b"
    r"|\b(?:need|have) to (?:keep|continue|carry on) (?:taking|using|having)\b"
    rf"|\b(?:keep|continue) (?:taking|using) (?:my |his |her |the )?(?:[\w'-]+ )?{_MEDICINE}\b"
    r".{0,30}\bstop\b",
    re.IGNORECASE,
)

# dosing ---------------------------------------------------------------------------------------
_DOSING = re.compile(
    r"\b(dose|doses|dosage|dosing|mg|mcg|milligrams?|micrograms?|prescri\w*)\b",
    re.IGNORECASE,
)
# Doses that are imaging or statistics, not medicine: "low-dose CT" screening, a scan's radiation
# dose, the dose of contrast, a dose-response relation, a prescription for a mammogram. Taken out
# before the dosing check, so that screening questions (and the passages that answer them) are not
# declined as prescribing.
_NOT_A_MEDICINE_DOSE = re.compile(
    r"\blow[- ]dose\b|\b(radiation|effective|contrast|absorbed|skin|glandular|mean glandular) doses?\b|"
    r"\bdoses? of (radiation|contrast|x-?rays?)\b|\bdose[- ]response\b|"
    r"\bdoses? (of |about |around )?[\d.,]+ ?(msv|mgy|sv|gy|millisieverts?|milligrays?)\b|"
    r"\bdoses? (from|of|in|for) (a |an |the |my |this |one )?(chest |breast |lung |body |head )?"
    r"(ct|cat|x-?rays?|scans?|mammogra\w*|imaging|radiograph\w*|tomosynthesis|screening)\b|"
    r"\bprescri\w* (?:(?:me|her|him|them) )?(?:(?:for|of) )?(?:an? |the )?"
    r"(?:follow-?up |screening |low-?dose |yearly |annual )?"
    r"(?:mammogra\w*|ct|cat|scans?|x-?rays?|imaging|mri|ultrasound|screening|tests?)\b",
    re.IGNORECASE,
)
# Asking which medicine, how much or how often, for oneself or someone: no dose word needed.
_MEDICINE_CHOICE = re.compile(
    rf"\bhow (?:much|many) (?:of )?(?:my |his |her |the )?(?:\w+ )?{_MEDICINE}\b"
    rf"|\bhow (?:much|many) (?:\w+ ){{0,2}}(?:of )?(?:my |his |her |the )?{_MEDICINE}\b"
    r"|\bhow many (?:puffs|units|drops|spoons|sprays)\b"
    rf"|\bhow often should {_PERSON} (?:take|use|give|have)\b"
    rf"|\b(?:which|what) (?:\w+ )?{_MEDICINE} (?:should|do|can|would|must)\b"
    rf"|\b(?:should|can|could|may|must) {_PERSON} (?:take|use|give|start|try|have|get)\b"
    rf".{{0,30}}\b{_MEDICINE}\b"
    rf"|\b(?:double|halve|increase|decrease|raise|lower|up|change|adjust) (?:my |his |her |the )?(?:\w+ )?"
    rf"(?:{_MEDICINE}|dose|dosage)\b",
    re.IGNORECASE,
)

# caveats and the rest -------------------------------------------------------------------------
_PROGNOSIS = re.compile(
    r"\b(prognosis|survival|survive|life expectancy|how long (will|do|does) .{0,20}live|"
    r"chance of (dying|death|cure)|will (i|she|he) die|outlook|"
    r"(can|could|will|would|might) (this|it|that|a \w+|an \w+|the \w+) kill)\b",
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


def _plain(text: str) -> str:
    """Typographic apostrophes as typed ones, so that "can’t" reads as "can't"."""
    return text.replace("\u2019", "'").replace("\u2018", "'")


@dataclass(frozen=True)
class QuestionFlags:
    red_flag: bool
    dosing: bool
    diagnosis_demand: bool
    """The not-a-diagnosis caveat goes with the answer: "do I have cancer?" or a demand for a verdict."""
    prognosis: bool
    about_analysis: bool
    self_harm: bool = False
    stop_treatment: bool = False
    diagnosis_without_clinician: bool = False

    @property
    def category(self) -> Category | None:
        """The guardrail the question is caught by, or None: a question to answer."""
        caught = {
            "self_harm": self.self_harm,
            "emergency": self.red_flag,
            "diagnosis": self.diagnosis_without_clinician,
            "stop_treatment": self.stop_treatment,
            "dosing": self.dosing,
        }
        return next((c for c in CATEGORIES if caught[c]), None)


def read_question(question: str) -> QuestionFlags:
    text = _plain(question)
    without_clinician = bool(_WITHOUT_CLINICIAN.search(text) and _VERDICT.search(text))
    return QuestionFlags(
        red_flag=is_emergency(text),
        dosing=is_dosing(text),
        diagnosis_demand=without_clinician or bool(_DIAGNOSIS_QUESTION.search(text)),
        prognosis=bool(_PROGNOSIS.search(text)),
        about_analysis=bool(_ABOUT_ANALYSIS.search(text)),
        self_harm=bool(_SELF_HARM.search(_NOT_A_MEDICINE_DOSE.sub(" ", text))),
        stop_treatment=bool(_STOP_TREATMENT.search(text)),
        diagnosis_without_clinician=without_clinician,
    )


def is_emergency(text: str) -> bool:
    """Red-flag symptoms described by someone who has them now (not a symptom named in general)."""
    text = _plain(text)
    return bool(
        _RED_FLAG_SYMPTOM.search(text) and _SOMEONE_NOW.search(text) and not _CLINICIAN_VOICE.search(text)
    )


def is_instruction(text: str) -> bool:
    """Text that tries to instruct the assistant; inside notes and documents it is never obeyed."""
    return bool(_INJECTION.search(text))


def is_dosing(text: str) -> bool:
    """A request for (or statement of) a medicine's dose, or which medicine to take; imaging doses
    do not count."""
    text = _plain(text)
    return bool(_DOSING.search(_NOT_A_MEDICINE_DOSE.sub(" ", text)) or _MEDICINE_CHOICE.search(text))


# Fixed sentences. They carry no facts or numbers, so they need no citation.
URGENT_LEAD = "If this is happening now, seek emergency care immediately: call your local emergency number."
URGENT_REVIEW = (
    "The model flags a finding that can be an emergency, so a clinician should review this image "
    "without delay."
)
SELF_HARM_SUPPORT = (
    "I am sorry you are going through this, and you do not have to face it alone: please contact your "
    "local emergency number or a crisis line now, or tell someone you trust or your care team how you feel."
)
DOSING_DECLINED = (
    "I cannot advise on medicines, doses or prescriptions; the treating clinician or pharmacist decides."
)
STOP_TREATMENT_DECLINED = (
    "I cannot advise on stopping, skipping or changing a treatment or a recommended test; please talk to "
    "the clinician who prescribed or ordered it before changing anything."
)
DIAGNOSIS_DECLINED = (
    "I cannot give a diagnosis or take the place of a clinician; a qualified clinician must confirm what "
    "the images show."
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
CATEGORY_SENTENCE: dict[Category, str] = {
    "self_harm": SELF_HARM_SUPPORT,
    "emergency": URGENT_LEAD,
    "diagnosis": DIAGNOSIS_DECLINED,
    "stop_treatment": STOP_TREATMENT_DECLINED,
    "dosing": DOSING_DECLINED,
}
"""What an answer says first for each category (self_harm: all it says)."""
DECLINES = frozenset({*CATEGORY_SENTENCE.values(), OFF_TOPIC})
"""Sentences that refuse or redirect a question; a benign question's answer holds none of them."""
_FROM_SOURCES = ", so what follows comes directly from the cited sources."
FALLBACK_NOTICES: dict[str, str] = {
    "unreachable": f"The language model server could not be reached{_FROM_SOURCES}",
    "timeout": f"The language model did not answer in time{_FROM_SOURCES}",
    "error": f"The language model failed with an error{_FROM_SOURCES}",
    "empty": f"The language model gave no answer{_FROM_SOURCES}",
}
"""What an answer that falls back to the grounded composer (``chat.backends.fallback``) says before
the composer's sentences, one per cause."""
POLICY_SENTENCES = frozenset(
    {
        URGENT_LEAD,
        URGENT_REVIEW,
        SELF_HARM_SUPPORT,
        DOSING_DECLINED,
        STOP_TREATMENT_DECLINED,
        DIAGNOSIS_DECLINED,
        NO_DIAGNOSIS,
        PROGNOSIS_CAVEAT,
        OFF_TOPIC,
        NOT_FOUND,
        NO_ARTICLE,
        *FALLBACK_NOTICES.values(),
    }
)
