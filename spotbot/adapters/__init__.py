"""Adapters for the ports in spotbot.ports: local ones and AWS ones."""
