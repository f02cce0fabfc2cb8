"""The "Finalize" step: a job's counts, final status and summary."""
