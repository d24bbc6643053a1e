"""The report benchmark's own parts: it reads only the odd-numbered reports, and scores honestly."""

from __future__ import annotations

from bench.notes_reports import (
    LABELS,
    Report,
    odd_numbered_reports,
    regex_labels,
    reports_archive,
    sahay_mentions,
    score,
)
from sahay.notes.reader import default_reader


def test_only_the_odd_numbered_reports_are_read() -> None:
    reports = odd_numbered_reports(reports_archive())

    assert len(reports) == 1965
    assert all(report.number % 2 == 1 for report in reports)
    assert all(report.text.startswith(("FINDINGS: ", "IMPRESSION: ")) for report in reports)
    assert {label for report in reports for label in report.gold} == set(LABELS)


def test_a_mention_counts_unless_negated_hypothetical_family_resolved_or_a_weaker_link() -> None:
    text = (
        "Small right effusion. No pneumothorax. Resolution of the left lower lobe consolidation. "
        "Hyperexpanded lungs, suggestive of emphysema. Possible early pneumonia."
    )
    result = default_reader().read(text).model_dump(mode="json")
    counted = {(m.label, m.counted) for m in sahay_mentions(result)}

    assert counted == {
        ("Effusion", True),
        ("Pneumothorax", False),
        ("Lung Opacity", False),  # Consolidation, resolved
        ("Emphysema", False),  # inferred from Hyperinflation
        ("Pneumonia", True),  # uncertain still counts, as for CheXpert-style labelers
    }


def test_scores_count_each_finding_once_per_report() -> None:
    reports = [
        Report(1, "Small right effusion. No pneumothorax.", {"Effusion"}),
        Report(3, "Effusion has resolved. Pneumothorax.", {"Effusion"}),
    ]
    result = score(reports, [regex_labels(r.text) for r in reports])

    assert (result.tp["Effusion"], result.fp["Effusion"], result.fn["Effusion"]) == (2, 0, 0)
    assert (result.tp["Pneumothorax"], result.fp["Pneumothorax"]) == (0, 1)
    assert result.f1("Effusion") == 1.0 and result.f1("Pneumothorax") == 0.0
    assert round(result.micro(), 3) == round(2 * 2 / (2 * 2 + 1), 3)
