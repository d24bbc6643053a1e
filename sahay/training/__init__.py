"""Training and evaluation of model bundles."""
