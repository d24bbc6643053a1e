"""Labelled image datasets on disk (ImageFolder, CSV): read once, used by training, evaluation, cases and explain."""
