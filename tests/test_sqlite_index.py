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


def test_short_terms_are_answered_by_the_character_index_not_a_scan(tmp_path):
    index = SQLiteTagIndex(tmp_path / "index.sqlite3")
    try:
        texts = {"a.txt": "服务很好，价格便宜", "b.txt": "LOOKS okay", "c.txt": "价格太贵了", "d.txt": "c++ 好"}
        index.record_outcomes([record(name, [], text=text) for name, text in texts.items()], [], "j1")

        def found(text: str) -> list[str]:
            return sorted(h.record.asset for h in index.search(SearchQuery(text=text)))

        assert found("价格") == ["a.txt", "c.txt"]
        assert found("好价") == []  # "好，价": a phrase cannot match across the comma
        assert found("Ok") == ["b.txt"]  # case-insensitive, inside a word ("okay"), as LIKE was
        assert found("ks") == ["b.txt"] and found("s o") == ["b.txt"]
        assert found("+") == ["d.txt"] and found("c+") == ["d.txt"]  # not letters: LIKE, still right
        plans = " ".join(
            str(row[-1])
            for row in index.db.execute(
                "EXPLAIN QUERY PLAN SELECT rowid FROM tags WHERE rowid IN "
                "(SELECT rowid FROM tag_chars WHERE tag_chars MATCH ?)", ('"价 格"',)
            )
        )
        assert "VIRTUAL TABLE INDEX" in plans and "SCAN tag_text" not in plans
    finally:
        index.close()


def test_an_index_made_before_the_character_index_is_filled_once(tmp_path):
    path = tmp_path / "index.sqlite3"
    index = SQLiteTagIndex(path)
    index.record_outcomes([record("old.txt", [], text="旧的好评")], [], "j1")
    index.db.execute("DROP TABLE tag_chars")  # as an index of the previous release has it
    index.close()
    reopened = SQLiteTagIndex(path)
    try:
        assert [h.record.asset for h in reopened.search(SearchQuery(text="好评"))] == ["old.txt"]
    finally:
        reopened.close()
