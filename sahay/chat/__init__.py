"""Grounded chat: answers from the analysis and cited passages, verified sentence by sentence."""
