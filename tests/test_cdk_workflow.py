"""The tag-assets definition run by moto's Step Functions interpreter (tests/test_cloud_flow.py's cloud).

What these add to test_cloud_flow: a job whose source holds nothing to tag is finalized without
ever asking for an endpoint.
"""

from __future__ import annotations

from tests.test_cloud_flow import api, cloud  # noqa: F401 - the fixtures: one moto server, the real handlers


def test_a_job_with_no_assets_never_starts_an_endpoint(cloud, api):  # noqa: F811
    before = len(cloud.invocations)
    cloud.put("nothing-here/photo.jpg", b"filtered out: sentiment reads .txt")
    status, submitted = api("POST", "/jobs", {"source": "s3://assets/nothing-here/", "bot": "sentiment", "job_id": "empty-1"})
    assert status == 202, submitted
    execution = cloud.wait(submitted["execution_arn"])
    assert execution["status"] == "SUCCEEDED", (execution, cloud.invocations[before:])
    steps = [(i["function"], i["event"].get("action")) for i in cloud.invocations[before:] if i["event"].get("job_id") == "empty-1"]
    assert ("spotbot-endpoint", "ensure") not in steps
    assert steps[0] == ("spotbot-scanner", None) and ("spotbot-finalize", None) in steps
    status, job = api("GET", "/jobs/empty-1")
    assert job["counts"]["total"] == 0
