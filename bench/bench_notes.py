"""Benchmark the notes reader: notes per second for `sahay notes --batch`, in process and end to end.

.venv/bin/python -m bench.bench_notes [--notes 2000] [--write docs/benchmarks.md]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TEMPLATES = [
    "{age} yo {sex}, {py} pack-year smoker, {weeks} weeks of cough and weight loss, "
    "denies fever, history of TB.",
    "Findings: No focal consolidation, pleural effusion or pneumothorax. Heart size is normal. "
    "Impression: No acute cardiopulmonary process.",
    "History: {age} year old {sex} with fever and productive cough for {weeks} days. Findings: Right lower "
    "lobe airspace opacity concerning for pneumonia. Small right pleural effusion. Cannot exclude a "
    "{size} cm nodule in the left upper lobe.",
    "Indication: screening. Family history: mother with breast cancer. Findings: {size} cm irregular mass "
    "with microcalcifications in the upper outer quadrant of the left breast. BI-RADS 4A.",
]


def make_notes(count: int) -> list[dict[str, str]]:
    notes = []
    for i in range(count):
        text = TEMPLATES[i % len(TEMPLATES)].format(
            age=40 + i % 40,
            sex="male" if i % 2 else "female",
            py=10 + i % 50,
            weeks=1 + i % 8,
            size=1 + i % 3,
        )
        notes.append({"id": f"note-{i}", "text": text})
    return notes


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--notes", type=int, default=2000)
    parser.add_argument("--write", type=Path)
    args = parser.parse_args()

    from bench.bench_analyze import _replace_section
    from sahay.notes.batch import read_batch
    from sahay.notes.reader import NotesReader

    notes = make_notes(args.notes)
    lines = [json.dumps(n) for n in notes]
    start = time.perf_counter()
    reader = NotesReader()
    build_s = time.perf_counter() - start
    list(read_batch(lines[:50], reader))  # warm-up
    start = time.perf_counter()
    results = list(read_batch(lines, reader))
    in_process = len(results) / (time.perf_counter() - start)

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "notes.jsonl"
        path.write_text("\n".join(lines) + "\n")
        sahay = Path(sys.executable).parent / "sahay"
        start = time.perf_counter()
        subprocess.run([str(sahay), "notes", "--batch", str(path)], check=True, capture_output=True)
        end_to_end = len(lines) / (time.perf_counter() - start)

    report = "\n".join(
        [
            "## notes",
            "",
            f"`python -m bench.bench_notes --notes {args.notes}` on {os.cpu_count()} CPUs: realistic "
            f"notes of 1 to 4 sentences ({sum(len(n['text']) for n in notes) / len(notes):.0f} characters "
            "on average).",
            "",
            "| Measure | Value |",
            "|---|---:|",
            f"| Building the reader (rules, spaCy pipeline) | {build_s:.2f} s |",
            f"| `read_batch`, in process (notes/s) | {in_process:.0f} |",
            f"| `sahay notes --batch`, whole command incl. start-up (notes/s) | {end_to_end:.0f} |",
            "",
        ]
    )
    print(report)
    if args.write:
        _replace_section(args.write, "## notes", report)


if __name__ == "__main__":
    main()
