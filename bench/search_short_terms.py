"""Short search terms: the per-character index (tag_chars) against one LIKE pass and a scan per term.

    PYTHONPATH=. python bench/search_short_terms.py --records 50000 --terms 30

Prints the indexing time, then for one term and for --terms terms: the index, one LIKE pass over
the text (round 2's way) and one LIKE scan per term (round 1's way), each with its hit count.
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from pathlib import Path

from spotbot.adapters.sqlite.index import SQLiteTagIndex
from spotbot.domain import TagRecord
from spotbot.ports import SearchQuery

WORDS = "这家店的菜很好吃服务也周到下次还来味道不错价格便宜环境干净老板热情排队太久"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=50_000)
    parser.add_argument("--terms", type=int, default=30)
    args = parser.parse_args()
    rng = random.Random(0)
    with tempfile.TemporaryDirectory() as tmp:
        index = SQLiteTagIndex(Path(tmp) / "index.sqlite3")
        started = time.perf_counter()
        for start in range(0, args.records, 1000):
            batch = [
                TagRecord(job_id="j", bot="b", model_version="v", asset=f"a{i}", etag="e", tags=[],
                          text="".join(rng.choice(WORDS) for _ in range(40)))
                for i in range(start, min(args.records, start + 1000))
            ]
            index.record_outcomes(batch, [], "j")
        print(f"indexed {args.records:,} records in {time.perf_counter() - started:.1f} s")
        terms = [WORDS[i] + WORDS[i + 1] for i in range(args.terms)]  # distinct two-character terms, rarely all in one
        for chosen in (terms[:1], terms):
            started = time.perf_counter()
            hits = index.search(SearchQuery(text=" ".join(chosen), limit=20))
            print(f"{len(chosen)} short term(s), the character index: {time.perf_counter() - started:.3f} s, {len(hits)} hits")
            one_pass = " AND ".join(["body LIKE ? ESCAPE '\\'"] * len(chosen))  # without ESCAPE, FTS5 answers none
            started = time.perf_counter()
            rows = index.db.execute(
                f"SELECT asset FROM tags WHERE rowid IN (SELECT rowid FROM tag_text WHERE {one_pass}) "
                "ORDER BY created_at DESC LIMIT 20", [f"%{t}%" for t in chosen]
            ).fetchall()
            print(f"{len(chosen)} short term(s), one LIKE pass: {time.perf_counter() - started:.3f} s, {len(rows)} hits")
            like = " AND ".join(["tags.rowid IN (SELECT rowid FROM tag_text WHERE body LIKE ? ESCAPE '\\')"] * len(chosen))
            started = time.perf_counter()
            rows = index.db.execute(
                f"SELECT asset FROM tags WHERE {like} ORDER BY created_at DESC LIMIT 20", [f"%{t}%" for t in chosen]
            ).fetchall()
            print(f"{len(chosen)} short term(s), a scan per term: {time.perf_counter() - started:.3f} s, {len(rows)} hits")
        index.close()


if __name__ == "__main__":
    main()
