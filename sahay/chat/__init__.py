"""Grounded chat: answers from the analysis and cited passages, verified sentence by sentence."""

AUDIENCES = ("clinician", "patient")
"""Who an answer is written for: its wording, and which passages it may quote."""
