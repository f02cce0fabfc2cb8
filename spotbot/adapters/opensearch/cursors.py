"""The sorts the paged reads use, and the check that a search_after handed back to us has their shape.

A cursor comes back from a client; a search_after of the wrong shape makes OpenSearch fail the search
(a 500), so it is refused first as bad input: a list of an epoch-millis integer and then strings.
"""

from __future__ import annotations

from typing import Any

from spotbot.domain import BadInputError

TAG_SORT: list[dict[str, str]] = [{"created_at": "desc"}, {"asset": "asc"}, {"job_id": "asc"}]
JOB_SORT: list[dict[str, str]] = [{"created_at": "desc"}, {"job_id": "asc"}]
MAX_CURSOR_STRING = 4096  # longer than any asset URI or job id the index holds


def check_cursor(search_after: Any, sort: list[dict[str, str]]) -> None:
    """[epoch millis, then one string per further sort key] -- the shape of TAG_SORT and JOB_SORT -- or BadInputError."""
    shaped = (
        isinstance(search_after, list)
        and len(search_after) == len(sort)
        and type(search_after[0]) is int
        and -(2**63) <= search_after[0] < 2**63
        and all(isinstance(value, str) and len(value) <= MAX_CURSOR_STRING for value in search_after[1:])
    )
    if not shaped:
        raise BadInputError("the cursor is not one this index gave out: pass the `next` of the previous page")
