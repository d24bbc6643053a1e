"""Values read from matched text: numbers, measurements, durations, pack-years, ages, grades, BI-RADS.

``VALUE_READERS`` gives, for a concept, the function that turns its matched text into the
entity's normalised ``value``; the other helpers serve the measurement and risk-factor steps.
"""

from __future__ import annotations

import re
from collections.abc import Callable

NUMBER_WORDS = {
    "a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
    "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "few": 3, "several": 3,
}  # fmt: skip
UNIT_DAYS = {"d": 1, "w": 7, "m": 30, "y": 365}
SLASH_UNIT_DAYS = {"7": 1, "52": 7, "12": 30}  # 3/7 = 3 days, 3/52 = 3 weeks, 3/12 = 3 months
ROMAN = {"i": 1, "ii": 2, "iii": 3, "one": 1, "two": 2, "three": 3}
NUMBER = re.compile(r"\d+(?:\.\d+)?")


def duration_days(text: str) -> int | None:
    """'3 weeks' -> 21, 'a month' -> 30, '3/52' -> 21; None when no duration is found."""
    slash = re.search(r"(\d+)\s*/\s*(7|52|12)\b", text)
    if slash:
        return int(slash.group(1)) * SLASH_UNIT_DAYS[slash.group(2)]
    match = re.search(r"(\d+|[a-z]+)\s*-?\s*(d|w|mo|m|y)", text.lower())
    if not match:
        return None
    amount = int(match.group(1)) if match.group(1).isdigit() else NUMBER_WORDS.get(match.group(1))
    if amount is None:
        return None
    return amount * UNIT_DAYS[match.group(2)[0]]


def measurement_mm(text: str) -> float | None:
    """Largest dimension in millimetres: '1.2 x 0.8 cm' -> 12.0, '5 mm' -> 5.0."""
    numbers = [float(n) for n in NUMBER.findall(text)]
    if not numbers:
        return None
    scale = 10.0 if re.search(r"c(?:m|entimet)", text.lower()) else 1.0
    return round(max(numbers) * scale, 3)


def pack_years(text: str) -> float | None:
    """'40 pack-years' -> 40; '2 packs a day for 20 years' -> 40."""
    numbers = [float(n) for n in NUMBER.findall(text)]
    if not numbers:
        return None
    per_day = re.search(r"ppd|pks?\b|packs?\s*(?:a|per|/)?\s*day|packs?\s*(?:x|for|times|over)", text.lower())
    if per_day and len(numbers) >= 2:
        return numbers[0] * numbers[1]
    return numbers[0]


def _age(text: str) -> str | None:
    match = re.search(r"\d{1,3}", text)
    return match.group() if match and 0 < int(match.group()) <= 120 else None


def _birads(text: str) -> str | None:
    match = re.search(r"([0-6])\s*([abc])?\s*$", text, re.IGNORECASE)
    return (match.group(1) + (match.group(2) or "").upper()) if match else None


def _grade(text: str) -> str | None:
    match = re.search(r"grade\s*:?\s*([1-3]|iii|ii|i|one|two|three)\b", text, re.IGNORECASE)
    if not match:
        return None
    word = match.group(1).lower()
    return word if word.isdigit() else str(ROMAN[word])


def _pack_years_value(text: str) -> str | None:
    amount = pack_years(text)
    return None if amount is None else f"{amount:g}"


def brca_genes(text: str) -> list[str]:
    """'BRCA1/2 mutation' -> ['BRCA1', 'BRCA2']; 'BRCA carrier' -> ['BRCA']."""
    digits = re.findall(r"[12]", re.sub(r"(?i)^.*?brca", "", text))
    return [f"BRCA{d}" for d in sorted(set(digits))] or ["BRCA"]


def sex_after_age(text: str) -> str | None:
    match = re.search(r"\d\s*(?:[a-zA-Z./-]*\s*)?([MF])$", text.strip())
    return {"M": "male", "F": "female"}[match.group(1)] if match else None


VALUE_READERS: dict[str, Callable[[str], str | None]] = {
    "Age": _age,
    "BI-RADS": _birads,
    "Grade": _grade,
    "Pack-Years": _pack_years_value,
    "BRCA": lambda text: ", ".join(brca_genes(text)),
}
