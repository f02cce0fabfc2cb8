"""Thin Lambda handlers: each parses its input, calls spotbot, and formats the output."""
