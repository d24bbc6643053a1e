"""Use cases: one module each. The CLI, the API and the Python library call these, and only these."""
