"""Spot Tagging Bot: machine-learning tags on many assets, locally or on AWS Spot."""

__version__ = "0.1.0"
