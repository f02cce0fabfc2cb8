"""The SQLite tag index against the contract every TagIndex adapter shares (index fixture: conftest)."""

from tests.index_contract import *  # noqa: F403
