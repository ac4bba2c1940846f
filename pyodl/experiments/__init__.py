"""Experiments built on the pipeline: personalization (the seed paper's Table II), learning from a stream
with teacher queries, federated personalization on a fleet of boards, and what they share: trainers,
workers, checkpoints."""
