"""Experiments built on the pipeline: personalization (the seed paper's Table II)."""
