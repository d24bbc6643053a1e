"""Model bundles, providers, registry and prediction."""
