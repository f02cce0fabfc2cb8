"""The cloud tag index: OpenSearch (Amazon OpenSearch Service), the same port as SQLiteTagIndex.

Five indices, named from a prefix: `<prefix>-tasks`, `<prefix>-tags`, `<prefix>-jobs`, `<prefix>-bots`,
and `<prefix>-reuse` (an entry per reusable record, for incremental jobs: see reuse.py).
`ensure_indices()` creates them (and an index template per index, so an index that a write
auto-creates still gets the right mappings); it is idempotent and only adds to mappings.

Documents are always written whole, keyed by a stable id -- no scripted updates:

- task: id `task_id(job_id, asset)`; tag record: the same id (one per asset per job); job: `job_id`;
  bot: its name.
- `record_outcomes` reads the current task documents with a real-time multi-get, then writes the
  tag documents and the whole updated task documents in byte-sized bulk requests (tags first: if
  the write is cut short, the task is still PENDING and is tagged again, overwriting its record).
  OpenSearch has no transactions, so "all or nothing" becomes "idempotent and retried".

Full text. `search_text` (labels, string fields of tags, the asset's text) is indexed three ways:
the field itself with the built-in `cjk` analyzer (CJK bigrams, for relevance-ranked queries), a
`.gram` sub-field of 1- and 2-character n-grams and a `.tri` sub-field of trigrams, both lowercased
and over every character. A query term of one or two characters, lowercased whole, must be a
`.gram` term; a longer one must have each of its trigrams in `.tri`, in a row (a phrase). Either
way it is an exact, case-insensitive substring match, the same as the SQLite trigram index and its
LIKE fallback. No plugins are needed. (osmem, the test server, indexes all n-grams of a value at
one position, so there the "in a row" part is not checked; see tests/test_opensearch_index.py.)

Modules: schema (mappings and templates), bulk (BulkWriter), connection (client, indices, refresh,
paging), records (jobs and bots), tasks, tags, reuse; this class composes them.

Refresh policy. Writes use `refresh=false`. `add_assets` refreshes the tasks index when it is
done (the shards are planned from it straight away). A read that goes through search (not
get/mget, which are real-time) refreshes its index first when this instance has written to it
since its last refresh -- so one instance always reads its own writes -- or when asked with
`consistent=True`. `counts()` defaults to `consistent=True`, because it decides a job's final
status from writes made by other processes; everything else defaults to near-real-time.
"""

from __future__ import annotations

from spotbot.adapters.opensearch.records import JobAndBotRecords
from spotbot.adapters.opensearch.reuse import ReuseRecords
from spotbot.adapters.opensearch.tags import TagRecords
from spotbot.adapters.opensearch.tasks import TaskRecords


class OpenSearchTagIndex(TaskRecords, TagRecords, JobAndBotRecords, ReuseRecords):
    """TagIndex on OpenSearch. The constructor makes no request; call ensure_indices() once."""
