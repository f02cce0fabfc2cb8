"""The "Start bot endpoint" and "Release endpoint" steps: a bot's SageMaker endpoint, started and released."""
