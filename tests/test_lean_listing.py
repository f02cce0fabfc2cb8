"""The lean ListObjectsV2 client against moto's server: the same pages botocore reads, the same errors."""

from __future__ import annotations

import boto3
import pytest
from botocore.exceptions import ClientError

from spotbot.adapters.s3.lean_listing import LeanListingClient, parse_list_page
from spotbot.adapters.s3.listing import SourceNotFoundError, list_source
from tests.conftest import MOTO_CREDENTIALS, start_moto_server

KEYS = [f"photos/a{i % 7}/{i:05d}.jpg" for i in range(300)] + [
    "photos/with space.jpg", "photos/a+b=c&d.jpg", "photos/中文 照片.JPG", "photos/x%20y.jpg", "photos/folder/", "top.jpg"]  # fmt: skip


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    for name, value in MOTO_CREDENTIALS.items():
        mp.setenv(name, value)
    moto, url = start_moto_server()
    s3 = boto3.client("s3", endpoint_url=url)
    s3.create_bucket(Bucket="lean-assets")
    for key in KEYS:
        s3.put_object(Bucket="lean-assets", Key=key, Body=b"x")
    yield url, s3
    moto.stop()
    mp.undo()


def test_pages_match_botocore(server):
    url, s3 = server
    lean = LeanListingClient(url)
    for params in ({"Prefix": "photos/"}, {"Prefix": "photos/", "Delimiter": "/"}, {"Prefix": "photos/", "StartAfter": "photos/a3/00200.jpg"},
                   {"Prefix": "photos/", "MaxKeys": 7}):  # fmt: skip
        want, got = s3.list_objects_v2(Bucket="lean-assets", **params), lean.list_objects_v2(Bucket="lean-assets", **params)
        assert [(c["Key"], c["ETag"], c["Size"]) for c in got.get("Contents", [])] == [
            (c["Key"], c["ETag"], c["Size"]) for c in want.get("Contents", [])], params
        assert got.get("CommonPrefixes", []) == want.get("CommonPrefixes", [])
        assert got["IsTruncated"] == want["IsTruncated"]
    # the next page, each client from its own token
    want = s3.list_objects_v2(Bucket="lean-assets", Prefix="photos/", MaxKeys=7)
    got = lean.list_objects_v2(Bucket="lean-assets", Prefix="photos/", MaxKeys=7)
    want = s3.list_objects_v2(Bucket="lean-assets", Prefix="photos/", MaxKeys=7, ContinuationToken=want["NextContinuationToken"])
    got = lean.list_objects_v2(Bucket="lean-assets", Prefix="photos/", MaxKeys=7, ContinuationToken=got["NextContinuationToken"])
    assert [c["Key"] for c in got["Contents"]] == [c["Key"] for c in want["Contents"]] and len(got["Contents"]) == 7


def test_the_parallel_lister_on_the_lean_client_finds_every_asset(server):
    url, s3 = server
    found, left = list_source(LeanListingClient(url), "s3://lean-assets/photos/", (".jpg",), 16)
    expected = sorted(k for k in KEYS if k.startswith("photos/") and k.lower().endswith(".jpg"))
    assert not left and sorted(a.uri.removeprefix("s3://lean-assets/") for a in found) == expected


def test_s3_errors_are_botocore_client_errors(server):
    url, _ = server
    with pytest.raises(ClientError) as caught:
        LeanListingClient(url).list_objects_v2(Bucket="no-such-bucket")
    assert caught.value.response["Error"]["Code"] == "NoSuchBucket"
    with pytest.raises(SourceNotFoundError, match="does not exist"):
        list_source(LeanListingClient(url), "s3://no-such-bucket/x/", (".jpg",), 4)


def test_a_url_encoded_page_is_decoded():
    body = (b'<?xml version="1.0"?><ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
            b"<EncodingType>url</EncodingType><IsTruncated>true</IsTruncated><NextContinuationToken>t1</NextContinuationToken>"
            b"<Contents><Key>a%2Bb+c%E4%B8%AD.jpg</Key><ETag>&quot;e&quot;</ETag><Size>3</Size></Contents>"
            b"<CommonPrefixes><Prefix>d%20e/</Prefix></CommonPrefixes></ListBucketResult>")  # fmt: skip
    page = parse_list_page(body)
    assert page["Contents"] == [{"Key": "a+b c中.jpg", "ETag": '"e"', "Size": 3}]
    assert page["CommonPrefixes"] == [{"Prefix": "d e/"}] and page["IsTruncated"] and page["NextContinuationToken"] == "t1"
