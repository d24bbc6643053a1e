"""Fusion of image findings with the note: evidence, assessments, discordances and cited flags."""

from __future__ import annotations

import pytest

from sahay.analysis import Finding
from sahay.notes import read_note
from sahay.notes.fusion import fuse, fusion_rules

NOTE = "64 yo male, 40 pack-year smoker, 3 weeks of cough and weight loss, denies fever, history of TB"


def _findings(**positives: float) -> list[Finding]:
    labels = ["Nodule", "Effusion", "Pneumonia", "Consolidation", "Cardiomegaly"]
    return [
        Finding(
            label=label, probability=positives.get(label, 0.1), threshold=0.5, positive=label in positives
        )
        for label in labels
    ]


def test_the_image_probability_is_never_changed() -> None:
    findings = _findings(Nodule=0.83)
    fusion = fuse(findings, read_note("Known pulmonary nodule. No pleural effusion."))
    assert [f.image_probability for f in fusion.findings] == [f.probability for f in findings]


@pytest.mark.parametrize(
    ("note", "positives", "label", "assessment"),
    [
        ("Known right upper lobe nodule.", {"Nodule": 0.8}, "Nodule", "concordant-positive"),
        ("No pleural effusion.", {}, "Effusion", "concordant-negative"),
        ("No pleural effusion.", {"Effusion": 0.9}, "Effusion", "image-only"),
        ("Cough.", {"Nodule": 0.7}, "Nodule", "image-only"),
        ("Large left pleural effusion on ultrasound.", {}, "Effusion", "notes-only"),
        ("Possible pneumonia.", {"Pneumonia": 0.7}, "Pneumonia", "uncertain"),
        ("History of pneumonia, resolved.", {}, "Pneumonia", "uncertain"),
        ("Interval resolution of the right effusion.", {"Effusion": 0.8}, "Effusion", "uncertain"),
        # A sign that points to the finding moves it less than a stated finding.
        ("Blunted right costophrenic angle.", {"Effusion": 0.8}, "Effusion", "uncertain"),
        ("Blunted right costophrenic angle.", {}, "Effusion", "uncertain"),
        ("Basilar opacity may represent pneumonia.", {}, "Pneumonia", "uncertain"),
        ("Calcified granuloma in the right upper lobe.", {"Nodule": 0.8}, "Nodule", "image-only"),
    ],
)
def test_each_finding_is_assessed_against_the_note(
    note: str, positives: dict[str, float], label: str, assessment: str
) -> None:
    fusion = fuse(_findings(**positives), read_note(note))
    fused = next(f for f in fusion.findings if f.label == label)
    assert fused.assessment == assessment
    for evidence in fused.evidence:
        assert note[evidence.start : evidence.end] == evidence.text


def test_discordances_are_listed_both_ways() -> None:
    note = "No pleural effusion. Moderate cardiomegaly."
    fusion = fuse(_findings(Effusion=0.9), read_note(note))
    assert any(d.startswith("Effusion:") and "absent" in d for d in fusion.discordances)
    assert any(d.startswith("Cardiomegaly:") and "note reports it" in d for d in fusion.discordances)
    assert not any(d.startswith("Nodule") for d in fusion.discordances)


def test_the_smoker_with_a_nodule_gets_cited_flags() -> None:
    fusion = fuse(_findings(Nodule=0.8), read_note(NOTE))
    flags = {flag.id: flag for flag in fusion.flags}
    assert "40 pack-years" in flags["nodule-with-smoking-history"].text
    assert "Fleischner" in flags["nodule-with-smoking-history"].sources[0].title
    assert "USPSTF" in flags["lung-cancer-screening-criteria"].text
    assert all(source.url.startswith("https://doi.org/") for flag in fusion.flags for source in flag.sources)


def test_no_flag_without_its_conditions() -> None:
    fusion = fuse(_findings(Nodule=0.8), read_note("30 year old woman, never smoker, no cough."))
    assert fusion.flags == []


def test_airspace_disease_with_symptoms_cites_the_pneumonia_guideline() -> None:
    fusion = fuse(_findings(Consolidation=0.9), read_note("Fever and productive cough for 4 days."))
    (flag,) = [f for f in fusion.flags if f.id == "opacity-with-infection-symptoms"]
    assert "fever" in flag.text and "cough" in flag.text
    assert "ATS/IDSA" in flag.text or "Thoracic Society" in flag.sources[0].title


def test_every_rule_carries_a_source_and_a_known_condition() -> None:
    known = {
        "image_positive_any",
        "smoking_in",
        "pack_years_min",
        "age_between",
        "symptoms_affirmed_any",
        "tb_history",
    }
    for rule in fusion_rules()["flags"]:
        assert rule["sources"] and all(s["title"] and s["url"] for s in rule["sources"])
        assert set(rule["when"]) <= known


def test_a_sign_is_evidence_that_it_suggests_never_the_finding_itself() -> None:
    fusion = fuse(_findings(Effusion=0.8), read_note("Blunted left costophrenic angle. No pneumothorax."))
    effusion = next(f for f in fusion.findings if f.label == "Effusion")
    evidence = [(e.text, e.status) for e in effusion.evidence]
    assert evidence == [("Blunted left costophrenic angle", "suggested")]
    assert "only as suggested" in effusion.explanation
    assert effusion.explanation not in fusion.discordances
