"""The dosing guardrail: medicine doses are declined, imaging doses are not (issue 18)."""

from __future__ import annotations

import pytest

from sahay.chat.safety import is_dosing, read_question

IMAGING_DOSES = [
    "Who should get screened for lung cancer with low-dose CT?",
    "Is a low dose CT safe every year?",
    "What is the radiation dose of a chest X-ray?",
    "How big is the dose from a CT scan compared with a mammogram?",
    "Is the dose of contrast for a CT dangerous for my kidneys?",
    "What is the mean glandular dose in mammography?",
    "Does tomosynthesis add to the radiation dose?",
    "Low-dose CT screening is recommended for adults aged 50 to 80 years.",
]
MEDICINE_DOSES = [
    "What dose of amoxicillin should I take for pneumonia?",
    "How much prednisone should I give my father?",
    "What is the right dosage of furosemide for pulmonary edema?",
    "Can you prescribe antibiotics for this?",
    "Which antibiotic should I take?",
    "Take 500 mg of azithromycin daily.",
    "What dose of contrast and what dose of morphine should she get?",  # the medicine still counts
]


@pytest.mark.parametrize("text", IMAGING_DOSES)
def test_imaging_doses_are_not_prescribing(text: str) -> None:
    assert not is_dosing(text)
    assert not read_question(text).dosing


@pytest.mark.parametrize("text", MEDICINE_DOSES)
def test_medicine_doses_are_still_declined(text: str) -> None:
    assert is_dosing(text)
    assert read_question(text).dosing
