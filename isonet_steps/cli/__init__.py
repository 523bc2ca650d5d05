"""Thin Click commands: one file per step, each also registered as ``isonet-<step>``."""
