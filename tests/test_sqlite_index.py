"""The SQLite tag index against the contract every TagIndex adapter shares (index fixture: conftest)."""

from tests.index_contract import *  # noqa: F403


import pytest  # noqa: E402

from spotbot.adapters.sqlite.index import MAX_SEARCH_TERMS, SQLiteTagIndex  # noqa: E402
from spotbot.domain import BadInputError  # noqa: E402
from spotbot.ports import SearchQuery  # noqa: E402
from tests.index_contract import record  # noqa: E402


def test_search_is_bounded_and_short_terms_share_one_pass(tmp_path):
    index = SQLiteTagIndex(tmp_path / "index.sqlite3")
    try:
        index.record_outcomes([record("a.txt", [], text="好吃 Ok"), record("b.txt", [], text="难吃")], [], "j1")
        with pytest.raises(BadInputError, match=f"at most {MAX_SEARCH_TERMS} terms"):
            index.search(SearchQuery(text=" ".join(f"t{i}" for i in range(1000))))  # crashed SQLite before
        with pytest.raises(BadInputError, match="at most 200 characters"):
            index.search(SearchQuery(text="x" * 201))
        assert [h.record.asset for h in index.search(SearchQuery(text="好 ok"))] == ["a.txt"]
        assert {h.record.asset for h in index.search(SearchQuery(text="吃"))} == {"a.txt", "b.txt"}
        many = " ".join(["吃", "好", "ok", "k", "o"] * 6)  # 30 words, 5 distinct
        assert [h.record.asset for h in index.search(SearchQuery(text=many))] == ["a.txt"]
    finally:
        index.close()
