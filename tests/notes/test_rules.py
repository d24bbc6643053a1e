"""The rule files, sentence by sentence: what each finds and what ConText says about it.

Each case is a sentence written the way reports and notes are, the concepts it should yield with
their flags and attributes, and the risk factors it should set. A flag string lists exactly the
flags that are set ("" means asserted); ``None`` means the concept must not be found.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from sahay.analysis import NoteEntity, NoteReading
from sahay.notes.reader import NotesReader, default_reader
from sahay.notes.rule_files import BUILTIN_RULE_FILES, RULES_DIR

FLAGS = ("negated", "uncertain", "historical", "family", "hypothetical")  # "resolved" is a temporality
Expectation = str | dict[str, Any] | list[str | dict[str, Any]] | None

CASES: list[tuple[str, dict[str, Expectation], dict[str, Any]]] = [
    # --- negation, and its scope across commas, "or", "and", "but" ---
    (
        "No focal consolidation, pleural effusion or pneumothorax.",
        {"Consolidation": "negated", "Effusion": "negated", "Pneumothorax": "negated"},
        {},
    ),
    ("No evidence of pneumothorax or effusion.", {"Pneumothorax": "negated", "Effusion": "negated"}, {}),
    (
        "No fever but productive cough for 3 weeks.",
        {"Fever": "negated", "Cough": ""},
        {"symptom_duration_days": 21},
    ),
    ("Denies fever, history of pneumonia.", {"Fever": "negated", "Pneumonia": "historical"}, {}),
    ("Fever: none.", {"Fever": "negated"}, {}),
    ("Fever - absent.", {"Fever": "negated"}, {}),
    ("Patient is negative for TB.", {"Tuberculosis": "negated"}, {"tb_history": False}),
    ("Pneumonia was ruled out.", {"Pneumonia": "negated"}, {}),
    ("Effusion is unlikely.", {"Effusion": "negated"}, {}),
    ("Afebrile.", {"Fever": "negated"}, {}),
    ("Heart size is normal. Lungs are clear.", {"Cardiomegaly": "negated", "Lung Opacity": "negated"}, {}),
    ("Normal cardiomediastinal silhouette.", {"Enlarged Cardiomediastinum": "negated"}, {}),
    (
        "Lungs: no consolidation; small right effusion.",
        {"Consolidation": "negated", "Effusion": {"flags": "", "laterality": "right"}},
        {},
    ),
    ("No lung mass or hilar adenopathy.", {"Mass": "negated"}, {}),
    ("Compared to prior study, no new consolidation.", {"Consolidation": "negated"}, {}),
    (
        "No interval change in the small left pleural effusion.",
        {"Effusion": {"flags": "", "laterality": "left"}},
        {},
    ),
    (
        "ER positive, PR negative, HER2 negative invasive ductal carcinoma.",
        {"Ductal Carcinoma": ""},
        {},
    ),
    ("Benign breast tissue; no evidence of carcinoma.", {"Benign": "", "Carcinoma": "negated"}, {}),
    ("Core biopsy: fibroadenoma. No atypia or malignancy.", {"Fibroadenoma": "", "Malignant": "negated"}, {}),
    (
        "Shortness of breath on exertion, but no orthopnea.",
        {"Dyspnea": ["", "negated"]},
        {},
    ),
    ("No significant mass effect.", {"Mass Effect": "negated", "Mass": None}, {}),
    # --- uncertain ---
    (
        "Cannot exclude small left pleural effusion.",
        {"Effusion": {"flags": "uncertain", "laterality": "left"}},
        {},
    ),
    ("Rule out pneumonia.", {"Pneumonia": "uncertain"}, {}),
    ("Evaluate for pneumothorax.", {"Pneumothorax": "uncertain"}, {}),
    ("Pneumothorax cannot be excluded.", {"Pneumothorax": "uncertain"}, {}),
    (
        "Retrocardiac opacity may represent atelectasis or consolidation.",
        {
            "Lung Opacity": {"flags": "", "location": "retrocardiac"},
            "Atelectasis": "uncertain",
            "Consolidation": "uncertain",
        },
        {},
    ),
    (
        "Perihilar haziness suggestive of pulmonary edema.",
        {"Lung Opacity": {"flags": "", "location": "perihilar"}, "Edema": "uncertain"},
        {},
    ),
    (
        "Patchy airspace opacity in the right lower lobe, possibly pneumonia.",
        {
            "Lung Opacity": {"flags": "", "laterality": "right", "location": "lower lobe"},
            "Pneumonia": "uncertain",
        },
        {},
    ),
    (
        "Possible right middle lobe infiltrate.",
        {"Infiltration": {"flags": "uncertain", "laterality": "right", "location": "middle lobe"}},
        {},
    ),
    (
        "Questionable nodule at the left base.",
        {"Nodule": {"flags": "uncertain", "laterality": "left", "location": "base"}},
        {},
    ),
    (
        "Dense consolidation in the lingula, differential includes pneumonia versus aspiration.",
        {"Consolidation": {"flags": "", "location": "lingula"}, "Pneumonia": "uncertain"},
        {},
    ),
    (
        "Possible developing asymmetry in the left breast.",
        {"Asymmetry": {"flags": "uncertain", "laterality": "left"}},
        {},
    ),
    (
        "Pericardial effusion is not excluded.",
        {"Pericardial Effusion": "uncertain", "Effusion": None},
        {},
    ),
    (
        "BIRADS category 5. Highly suggestive of malignancy.",
        {"BI-RADS": {"value": "5"}, "Malignant": "uncertain"},
        {"birads": "5"},
    ),
    # --- historical ---
    (
        "Resolved right lower lobe pneumonia.",
        {"Pneumonia": {"flags": "resolved", "laterality": "right", "location": "lower lobe"}},
        {},
    ),
    ("Pneumonia has resolved.", {"Pneumonia": {"flags": "resolved", "temporality": "resolved"}}, {}),
    (
        "Old healed left rib fractures.",
        {"Fracture": {"flags": "historical", "laterality": "left"}},
        {},
    ),
    (
        "History of TB, now with cough and hemoptysis.",
        {"Tuberculosis": "historical", "Cough": "", "Hemoptysis": ""},
        {"tb_history": True},
    ),
    ("Previously treated pulmonary TB.", {"Tuberculosis": "historical"}, {"tb_history": True}),
    (
        "History of lung cancer treated with lobectomy.",
        {"Lung Cancer": "historical"},
        {"prior_cancer": ["lung cancer"]},
    ),
    ("3-week history of cough.", {"Cough": ""}, {"symptom_duration_days": 21}),
    # --- hypothetical ---
    ("Return if chest pain develops.", {"Chest Pain": "hypothetical"}, {}),
    ("If symptoms worsen or fever develops, return to the ED.", {"Fever": "hypothetical"}, {}),
    ("Risk of pneumonia discussed with the patient.", {"Pneumonia": "hypothetical"}, {}),
    # --- family ---
    (
        "Mother had breast cancer at 45.",
        {"Breast Cancer": "family"},
        {"family_history_breast_cancer": True, "prior_cancer": []},
    ),
    (
        "Family history of breast cancer in her sister; BRCA2 mutation carrier.",
        {"Breast Cancer": "family", "BRCA": ""},
        {"family_history_breast_cancer": True, "brca": ["BRCA2"]},
    ),
    (
        "No family history of breast cancer.",
        {"Breast Cancer": "negated"},
        {"family_history_breast_cancer": False},
    ),
    (
        "Sister with breast cancer, patient reports a breast lump.",
        {"Breast Cancer": "family", "Breast Mass": ""},
        {"family_history_breast_cancer": True},
    ),
    (
        "Father had lung cancer; patient denies hemoptysis.",
        {"Lung Cancer": "family", "Hemoptysis": "negated"},
        {"prior_cancer": []},
    ),
    # --- where and how big ---
    (
        "2.3 cm spiculated nodule in the right upper lobe.",
        {
            "Nodule": {
                "flags": "",
                "measurement": "2.3 cm",
                "measurement_mm": 23.0,
                "laterality": "right",
                "location": "upper lobe",
            }
        },
        {},
    ),
    (
        "LUL mass measuring 4.1 x 3.2 cm.",
        {
            "Mass": {
                "measurement": "4.1 x 3.2 cm",
                "measurement_mm": 41.0,
                "laterality": "left",
                "location": "upper lobe",
            }
        },
        {},
    ),
    (
        "No acute cardiopulmonary process. Stable 5 mm nodule.",
        {"Nodule": {"flags": "", "measurement": "5 mm", "measurement_mm": 5.0}},
        {},
    ),
    (
        "Pt has a 2 cm mass and a small effusion.",
        {"Mass": {"measurement_mm": 20.0}, "Effusion": {"measurement": None}},
        {},
    ),
    (
        "Left pleural effusion and right pneumothorax.",
        {"Effusion": {"laterality": "left"}, "Pneumothorax": {"laterality": "right"}},
        {},
    ),
    ("RLL consolidation.", {"Consolidation": {"laterality": "right", "location": "lower lobe"}}, {}),
    (
        "Calcified granuloma in the LLL, unchanged.",
        {"Granuloma": {"flags": "", "laterality": "left", "location": "lower lobe"}, "Nodule": None},
        {},
    ),
    ("Bibasilar atelectasis.", {"Atelectasis": {"laterality": "bilateral", "location": "base"}}, {}),
    ("Diffuse bilateral infiltrates.", {"Infiltration": {"flags": "", "laterality": "bilateral"}}, {}),
    (
        "Small right apical PTX.",
        {"Pneumothorax": {"flags": "", "laterality": "right", "location": "apex"}},
        {},
    ),
    (
        "Pleural thickening at the right apex.",
        {"Pleural_Thickening": {"laterality": "right", "location": "apex"}},
        {},
    ),
    (
        "Cavitary lesion in the right apex.",
        {"Lung Lesion": {"flags": "", "laterality": "right", "location": "apex"}},
        {},
    ),
    (
        "Blunting of the left costophrenic angle, likely a small effusion.",
        {
            "Blunted Costophrenic Angle": {"flags": "", "laterality": "left", "suggests": ["Effusion"]},
            "Effusion": {"flags": "uncertain", "inferred_from": None},
        },
        {},
    ),
    (
        "Interstitial fibrosis with honeycombing at the lung bases.",
        {"Fibrosis": [{"flags": "", "location": None}, {"flags": "", "location": "base"}]},
        {},
    ),
    ("Lingular scarring.", {"Scarring": {"flags": "", "location": "lingula"}, "Fibrosis": None}, {}),
    (
        "Right breast: architectural distortion at 12 o'clock.",
        {"Architectural Distortion": {"flags": "", "laterality": "right", "location": "12 o'clock"}},
        {},
    ),
    (
        "BI-RADS 4A: suspicious calcifications in the upper outer quadrant of the left breast.",
        {
            "BI-RADS": {"value": "4A"},
            "Calcifications": {"flags": "", "laterality": "left", "location": "upper outer quadrant"},
        },
        {"birads": "4A"},
    ),
    (
        "Palpable lump in the left breast for 2 months.",
        {"Breast Mass": {"flags": "", "laterality": "left"}},
        {"symptom_duration_days": None},
    ),
    # --- radiology reports: negated lists, certainty, resolution, conditionals (sentences of our own) ---
    (
        "Lungs are clear of consolidation, pneumothorax, or effusion.",
        {"Consolidation": "negated", "Pneumothorax": "negated", "Effusion": "negated", "Lung Opacity": None},
        {},
    ),
    (
        "The lungs are clear of focal airspace disease, pneumothorax and pleural effusion.",
        {"Lung Opacity": "negated", "Pneumothorax": "negated", "Effusion": "negated"},
        {},
    ),
    (
        "The chest is free of effusion, pneumothorax and edema.",
        {"Effusion": "negated", "Pneumothorax": "negated", "Edema": "negated"},
        {},
    ),
    (
        "Without evidence of pneumothorax, effusion or consolidation.",
        {"Pneumothorax": "negated", "Effusion": "negated", "Consolidation": "negated"},
        {},
    ),
    ("No acute fracture or pneumothorax.", {"Fracture": "negated", "Pneumothorax": "negated"}, {}),
    (
        "Pneumothorax, effusion and consolidation are absent.",
        {"Pneumothorax": "negated", "Effusion": "negated", "Consolidation": "negated"},
        {},
    ),
    (
        "IMPRESSION: Negative for effusion or pneumothorax.",
        {"Effusion": "negated", "Pneumothorax": "negated"},
        {},
    ),
    (
        "FINDINGS: No focal opacity to suggest pneumonia.",
        {"Lung Opacity": "negated", "Pneumonia": {"flags": "negated", "certainty": "negative"}},
        {},
    ),
    (
        "No effusion, but a small right pneumothorax is present.",
        {"Effusion": "negated", "Pneumothorax": ""},
        {},
    ),
    (
        "No consolidation; however, mild atelectasis at the left base.",
        {"Consolidation": "negated", "Atelectasis": ""},
        {},
    ),
    ("The lungs are clear.", {"Lung Opacity": {"flags": "negated", "certainty": "negative"}}, {}),
    (
        "Right basilar opacity may represent aspiration pneumonia.",
        {
            "Lung Opacity": {"flags": "", "certainty": "positive"},
            "Pneumonia": {"flags": "uncertain", "certainty": "uncertain", "inferred_from": "Lung Opacity"},
        },
        {},
    ),
    (
        "Blunted left costophrenic angle may indicate a small effusion.",
        {"Effusion": {"flags": "uncertain", "inferred_from": "Blunted Costophrenic Angle"}},
        {},
    ),
    (
        "Mildly hyperexpanded lungs, which suggests COPD.",
        {
            "Hyperinflation": {"flags": "", "suggests": ["COPD", "Emphysema"]},
            "COPD": {"flags": "uncertain", "inferred_from": "Hyperinflation"},
        },
        {},
    ),
    (
        "Cannot exclude a small left effusion.",
        {"Effusion": {"flags": "uncertain", "inferred_from": None}},
        {},
    ),
    (
        "Question of a tiny apical pneumothorax.",
        {"Pneumothorax": {"flags": "uncertain", "certainty": "uncertain"}},
        {},
    ),
    (
        "Findings are concerning for early edema.",
        {"Edema": {"flags": "uncertain", "inferred_from": None}},
        {},
    ),
    (
        "Atelectasis versus pneumonia in the left lower lobe.",
        {"Atelectasis": "uncertain", "Pneumonia": "uncertain"},
        {},
    ),
    ("This could be a small effusion.", {"Effusion": "uncertain"}, {}),
    ("Appearance suggests pneumonia.", {"Pneumonia": "uncertain"}, {}),
    (
        "Patchy opacity at the right base, most suggestive of pneumonia.",
        {"Pneumonia": {"flags": "uncertain", "inferred_from": None}},
        {},
    ),
    (
        "Interval resolution of the right basilar consolidation.",
        {"Consolidation": {"flags": "resolved", "temporality": "resolved", "certainty": "positive"}},
        {},
    ),
    ("Clearing of the left lower lobe opacity since the last film.", {"Lung Opacity": "resolved"}, {}),
    ("The effusion seen last week has cleared.", {"Effusion": "resolved"}, {}),
    (
        "The right chest tube has been removed.",
        {"Support Devices": {"flags": "resolved", "laterality": "right"}},
        {},
    ),
    ("Pneumothorax is no longer seen.", {"Pneumothorax": "resolved"}, {}),
    (
        "Resolution of the prior left lower lobe infiltrate.",
        {"Infiltration": {"temporality": "resolved"}},
        {},
    ),
    ("Partially resolved right effusion.", {"Effusion": {"flags": "", "temporality": "current"}}, {}),
    ("No change in the small left effusion.", {"Effusion": ""}, {}),
    ("No increase in size of the right upper lobe nodule.", {"Nodule": ""}, {}),
    ("Not only atelectasis is present at the bases.", {"Atelectasis": ""}, {}),
    (
        "If there is concern for rib fracture, a dedicated rib series could be obtained.",
        {"Fracture": {"flags": "hypothetical", "certainty": "uncertain"}},
        {},
    ),
    ("Subtle rib fractures may not be demonstrated on radiographs.", {"Fracture": "hypothetical"}, {}),
    (
        "INDICATION: rule out pneumonia.",
        {"Pneumonia": {"flags": "hypothetical", "section": "indication"}},
        {},
    ),
    (
        "HISTORY: pneumonia last month.\nFINDINGS: Small right effusion.",
        {
            "Pneumonia": {"flags": "historical", "section": "indication"},
            "Effusion": {"flags": "", "section": "findings"},
        },
        {},
    ),
    (
        "COMPARISON: radiograph with a left effusion.",
        {"Effusion": {"flags": "historical", "section": "comparison"}},
        {},
    ),
    ("INDICATION: cough and fever for 3 days.", {"Cough": "", "Fever": ""}, {"symptom_duration_days": 3}),
    (
        "Relative elevation of the right hemidiaphragm with adjacent atelectasis.",
        {"Atelectasis": {"flags": "", "experiencer": "patient"}},
        {},
    ),
    (
        "A relative with tuberculosis.",
        {"Tuberculosis": {"flags": "family", "experiencer": "family"}},
        {"tb_history": False},
    ),
    ("? right apical opacity", {"Lung Opacity": {"flags": "uncertain", "laterality": "right"}}, {}),
    ("?consolidation", {"Consolidation": "uncertain"}, {}),
    ("Query consolidation or effusion.", {"Consolidation": "uncertain", "Effusion": "uncertain"}, {}),
    ("Is there an effusion? No pneumothorax.", {"Effusion": "uncertain", "Pneumothorax": "negated"}, {}),
    ("Small right effusion? Follow-up advised.", {"Effusion": ""}, {}),
    # --- heart size ---
    ("The heart is large.", {"Cardiomegaly": ""}, {}),
    ("Cardiac silhouette is moderately enlarged.", {"Cardiomegaly": ""}, {}),
    ("Mildly enlarged heart.", {"Cardiomegaly": ""}, {}),
    ("Mild heart enlargement.", {"Cardiomegaly": ""}, {}),
    ("Cardiothoracic ratio above 0.5.", {"Cardiomegaly": ""}, {}),
    ("Borderline heart size.", {"Cardiomegaly": {"flags": "uncertain", "certainty": "uncertain"}}, {}),
    ("The heart is borderline in size.", {"Cardiomegaly": "uncertain"}, {}),
    ("Heart size is at the upper limits of normal.", {"Cardiomegaly": "negated"}, {}),
    # --- concepts of their own: not the finding they resemble ---
    ("Calcified granulomas in the right upper lobe.", {"Granuloma": "", "Nodule": None}, {}),
    ("A calcified nodule in the left lower lobe.", {"Nodule": "", "Granuloma": None}, {}),
    ("Hyperexpanded lungs.", {"Hyperinflation": "", "Emphysema": None}, {}),
    ("Apical scarring.", {"Scarring": "", "Fibrosis": None}, {}),
    ("Nodular opacity in the right midlung.", {"Lung Opacity": "", "Nodule": None}, {}),
    (
        "Mild volume loss in the left lung.",
        {"Volume Loss": {"flags": "", "suggests": ["Atelectasis"]}, "Atelectasis": None},
        {},
    ),
    ("Bullae in both apices.", {"Bullae": "", "Emphysema": None}, {}),
    ("Endotracheal tube tip 4 cm above the carina.", {"Support Devices": ""}, {}),
    ("Small left apical pleural air collection.", {"Pneumothorax": ""}, {}),
    # --- other findings and look-alikes ---
    (
        "Mild cardiomegaly with pulmonary vascular congestion.",
        {"Cardiomegaly": "", "Vascular Congestion": {"flags": "", "suggests": ["Edema"]}, "Edema": None},
        {},
    ),
    ("Hyperinflated lungs consistent with emphysema.", {"Hyperinflation": "", "Emphysema": ""}, {}),
    ("Small hiatal hernia.", {"Hernia": ""}, {}),
    ("Widened mediastinum, concerning for aortic injury.", {"Enlarged Cardiomediastinum": ""}, {}),
    ("Bilateral pedal edema.", {"Peripheral Edema": "", "Edema": None}, {}),
    (
        "Subcutaneous emphysema along the right chest wall.",
        {"Subcutaneous Emphysema": "", "Emphysema": None},
        {},
    ),
    (
        "Vascular calcifications, benign.",
        {"Vascular Calcification": "", "Calcifications": None, "Benign": ""},
        {},
    ),
    ("Incidental thyroid nodule.", {"Thyroid Nodule": "", "Nodule": None}, {}),
    ("Small knee effusion.", {"Joint Effusion": "", "Effusion": None}, {}),
    # --- pathology ---
    (
        "Invasive ductal carcinoma, grade 2.",
        {"Ductal Carcinoma": "", "Grade": {"value": "2"}},
        {"grade": 2},
    ),
    (
        "Ductal carcinoma in situ, nuclear grade III, with associated microcalcifications.",
        {"Ductal Carcinoma In Situ": "", "Grade": {"value": "3"}, "Calcifications": ""},
        {"grade": 3},
    ),
    (
        "Invasive lobular carcinoma with adjacent LCIS.",
        {"Lobular Carcinoma": "", "Lobular Carcinoma In Situ": ""},
        {},
    ),
    ("Atypical ductal hyperplasia, excision recommended.", {"Atypical Hyperplasia": ""}, {}),
    # --- symptoms and risk factors ---
    (
        "64 yo male, 40 pack-year smoker, 3 weeks of cough and weight loss, denies fever, history of TB.",
        {"Cough": "", "Weight Loss": "", "Fever": "negated", "Tuberculosis": "historical"},
        {
            "age": 64,
            "sex": "male",
            "smoking": "current",
            "pack_years": 40.0,
            "tb_history": True,
            "symptom_duration_days": 21,
        },
    ),
    ("Pt is a 64 y.o. male. No history of pneumonia.", {"Pneumonia": "negated"}, {"age": 64, "sex": "male"}),
    (
        "52-year-old woman with night sweats and fatigue.",
        {"Night Sweats": "", "Fatigue": ""},
        {"age": 52, "sex": "female"},
    ),
    ("72M with dyspnea on exertion.", {"Dyspnea": ""}, {"age": 72, "sex": "male"}),
    ("Age: 52. Sex: female.", {}, {"age": 52, "sex": "female"}),
    ("SOB and fatigue for 1 week.", {"Dyspnea": "", "Fatigue": ""}, {"symptom_duration_days": 7}),
    ("Hemoptysis x 2 days.", {"Hemoptysis": ""}, {"symptom_duration_days": 2}),
    ("Cough x 3/52.", {"Cough": ""}, {"symptom_duration_days": 21}),
    (
        "Weight loss of 10 kg over 3 months, no night sweats.",
        {"Weight Loss": "", "Night Sweats": "negated"},
        {"symptom_duration_days": 90},
    ),
    (
        "Former smoker, quit 10 years ago, 30 pack years.",
        {"Smoking": ""},
        {"smoking": "former", "pack_years": 30.0},
    ),
    ("Never smoker.", {"Smoking": ""}, {"smoking": "never", "pack_years": None}),
    ("Denies tobacco use.", {"Smoking": "negated"}, {"smoking": "never"}),
    ("She smokes 1 ppd x 25 years.", {"Smoking": ""}, {"smoking": "current", "pack_years": 25.0}),
    ("2 packs a day for 20 years, quit smoking in 2015.", {}, {"smoking": "former", "pack_years": 40.0}),
    (
        "Aged 80, HIV positive, s/p renal transplant on tacrolimus.",
        {},
        {"age": 80, "immunosuppression": ["hiv", "transplant", "immunosuppressive drugs"]},
    ),
    (
        "Receiving chemotherapy for lymphoma; on prednisone.",
        {"Cancer": ""},
        {"immunosuppression": ["chemotherapy", "steroids"], "prior_cancer": ["lymphoma"]},
    ),
    ("HIV negative.", {"Immunosuppression": "negated"}, {"immunosuppression": []}),
    ("Known BRCA1/2 mutation.", {"BRCA": ""}, {"brca": ["BRCA1", "BRCA2"]}),
]


@pytest.fixture(scope="module")
def reader() -> NotesReader:
    return default_reader()


def _flags(entity: NoteEntity) -> str:
    flags = [flag for flag in FLAGS if getattr(entity, flag)]
    return " ".join([*flags, "resolved"] if entity.temporality == "resolved" else flags)


def _check(entity: NoteEntity, expected: str | dict[str, Any], text: str) -> None:
    wanted = {"flags": expected} if isinstance(expected, str) else dict(expected)
    if "flags" in wanted:
        assert _flags(entity) == wanted.pop("flags"), f"{entity.concept} flags in {text!r}"
    for name, value in wanted.items():
        assert getattr(entity, name) == value, f"{entity.concept}.{name} in {text!r}"


@pytest.mark.parametrize(("text", "concepts", "risk"), CASES, ids=[case[0][:60] for case in CASES])
def test_sentence(
    reader: NotesReader, text: str, concepts: dict[str, Expectation], risk: dict[str, Any]
) -> None:
    reading = reader.read(text)
    for concept, expected in concepts.items():
        found = [e for e in reading.entities if e.concept == concept]
        if expected is None:
            assert not found, f"{concept} should not be found in {text!r}"
            continue
        assert found, f"{concept} not found in {text!r}: {[e.concept for e in reading.entities]}"
        expectations = expected if isinstance(expected, list) else [expected]
        assert len(found) >= len(expectations)
        for entity, wanted in zip(found, expectations, strict=False):
            _check(entity, wanted, text)
    for name, value in risk.items():
        assert getattr(reading.risk_factors, name) == value, f"risk_factors.{name} in {text!r}"


def test_every_evidence_names_its_text(reader: NotesReader) -> None:
    for case_text, _, _ in CASES:
        reading = reader.read(case_text)
        for name, evidence in reading.risk_factors.evidence.items():
            assert getattr(reading.risk_factors, name) not in (None, [], False)
            for piece in evidence.split("; "):
                assert piece in case_text, f"{name} evidence {piece!r} not in {case_text!r}"


# --- coverage: every built-in concept and every ConText category is exercised above ---


def _rule_files() -> dict[str, dict[str, Any]]:
    return {name: json.loads((RULES_DIR / name).read_text(encoding="utf-8")) for name in BUILTIN_RULE_FILES}


@pytest.fixture(scope="module")
def case_readings(reader: NotesReader) -> list[NoteReading]:
    return [reader.read(text) for text, _, _ in CASES]


def test_every_target_concept_is_exercised(case_readings: list[NoteReading]) -> None:
    found = {e.concept for reading in case_readings for e in reading.entities}
    for name, data in _rule_files().items():
        concepts = {rule["category"] for rule in data.get("target_rules", [])}
        assert concepts <= found, f"{name}: no case finds {sorted(concepts - found)}"


def test_every_context_category_is_exercised(reader: NotesReader) -> None:
    fired = set()
    for text, _, _ in CASES:
        graph = reader.nlp(text)._.context_graph
        fired |= {modifier.category for modifier in graph.modifiers}
    categories = {rule["category"] for rule in _rule_files()["context.json"]["context_rules"]}
    assert categories <= fired, f"no case uses {sorted(categories - fired)}"


def test_chest_concepts_are_the_model_finding_names() -> None:
    concepts = {rule["category"] for rule in _rule_files()["findings.json"]["target_rules"]}
    chest_model = {
        "Atelectasis", "Consolidation", "Infiltration", "Pneumothorax", "Edema", "Emphysema", "Fibrosis",
        "Effusion", "Pneumonia", "Pleural_Thickening", "Cardiomegaly", "Nodule", "Mass", "Hernia",
        "Lung Lesion", "Fracture", "Lung Opacity", "Enlarged Cardiomediastinum",
    }  # fmt: skip
    separate = {
        "Granuloma", "Hyperinflation", "Vascular Congestion", "Scarring", "Blunted Costophrenic Angle",
        "Volume Loss", "Bullae", "Support Devices",
    }  # fmt: skip
    assert concepts == chest_model | {"Tuberculosis"} | separate


@pytest.mark.parametrize("name", BUILTIN_RULE_FILES)
def test_rule_files_load_with_medspacy_classes(name: str) -> None:
    from sahay.notes.rule_files import load_rule_file

    rules = load_rule_file(Path(RULES_DIR / name))
    assert rules.targets or rules.context or rules.sections
