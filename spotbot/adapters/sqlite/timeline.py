"""When a local job's assets finished, per second: what the jobs page draws its throughput chart from."""

from __future__ import annotations

import sqlite3


def finished_per_second(db: sqlite3.Connection, job_id: str) -> list[tuple[int, int]]:
    """(unix second, assets finished in it) for the job's DONE and FAILED tasks, oldest first."""
    rows = db.execute(
        "SELECT CAST(strftime('%s', updated_at) AS INTEGER) AS second, COUNT(*) FROM tasks "
        "WHERE job_id = ? AND status IN ('DONE', 'FAILED') GROUP BY second ORDER BY second",
        (job_id,),
    )
    return [(int(second), int(count)) for second, count in rows if second is not None]
