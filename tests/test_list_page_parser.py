"""The lean client's page reader: S3's own page shape read by regexes must give what an XML parser gives.

Each generated page is written as S3 writes it and then in shapes S3 does not write (pretty-printed,
fields reordered, CDATA, character references, comments); `parse_list_page` must always agree with
`parse_list_page_with_expat`, and take its fast path on S3's shape.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from unittest import mock
from urllib.parse import quote
from xml.sax.saxutils import escape

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from spotbot.adapters.s3 import lean_listing
from spotbot.adapters.s3.lean_listing import parse_list_page, parse_list_page_with_expat

NAMES = st.text(st.characters(blacklist_categories=("Cs", "Cc")) | st.sampled_from(list("&<>\"'%+ /")), min_size=1, max_size=24)
QUOT = {'"': "&quot;"}
ETAGS = st.text("0123456789abcdef-", min_size=1, max_size=40).map(lambda etag: f'"{etag}"')


def page_xml(keys: list[tuple[str, str, int]], folders: list[str], *, url: bool, truncated: bool, token: str | None,
             shape: str = "s3") -> bytes:
    def text(value: str) -> str:
        value = quote(value, safe="/") if url else value
        if shape == "cdata" and "]]>" not in value:
            return f"<![CDATA[{value}]]>"
        if shape == "references":
            return "".join(f"&#{ord(c)};" if c.isalpha() else escape(c, QUOT) for c in value)
        return escape(value, QUOT)

    gap = "\n  " if shape == "pretty" else ""
    items = []
    for key, etag, size in keys:
        fields = [f"<Key>{text(key)}</Key>", "<LastModified>2024-01-01T00:00:00.000Z</LastModified>",
                  f"<ETag>{escape(etag, QUOT)}</ETag>", f"<Size>{size}</Size>", "<StorageClass>STANDARD</StorageClass>"]  # fmt: skip
        if shape == "reordered":
            fields = [fields[0], fields[3], fields[2], fields[1]]
        if shape == "commented":  # a comment an XML parser skips, holding what a regex would take for a field
            fields.insert(1, "<!-- <ETag>&quot;x&quot;</ETag><Size>0</Size> -->")
        items.append(f"<Contents>{gap}{gap.join(fields)}{gap}</Contents>")
    parts = ['<?xml version="1.0" encoding="UTF-8"?>', '<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">',
             "<Name>b</Name><Prefix>p/</Prefix>", "<EncodingType>url</EncodingType>" if url else "",
             f"<IsTruncated>{'true' if truncated else 'false'}</IsTruncated>",
             f"<NextContinuationToken>{escape(token)}</NextContinuationToken>" if token else "", *items,
             *(f"<CommonPrefixes>{gap}<Prefix>{text(folder)}</Prefix>{gap}</CommonPrefixes>" for folder in folders),
             "</ListBucketResult>"]  # fmt: skip
    return gap.join(parts).encode()


PAGES = st.tuples(
    st.lists(st.tuples(NAMES, ETAGS, st.integers(0, 5 * 2**40)), max_size=12),
    st.lists(NAMES.map(lambda name: name + "/"), max_size=4),
    st.booleans(), st.booleans(), st.none() | st.text("abcdefXYZ0189+/=", min_size=1, max_size=30),
)  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(PAGES, st.sampled_from(["s3", "pretty", "reordered", "cdata", "references", "commented"]))
def test_every_shape_reads_as_an_xml_parser_reads_it(page, shape):
    keys, folders, url, truncated, token = page
    body = page_xml(keys, folders, url=url, truncated=truncated, token=token, shape=shape)
    got, want = parse_list_page(body), parse_list_page_with_expat(body)
    assert got == want
    assert [c["Key"] for c in got.get("Contents", [])] == [key for key, _, _ in keys]
    assert [p["Prefix"] for p in got.get("CommonPrefixes", [])] == folders
    assert [c["ETag"] for c in got.get("Contents", [])] == [etag for _, etag, _ in keys]


@settings(max_examples=100, deadline=None)
@given(PAGES)
def test_s3_shaped_pages_take_the_fast_path(page):
    keys, folders, url, truncated, token = page
    body = page_xml(keys, folders, url=url, truncated=truncated, token=token)
    with mock.patch.object(lean_listing, "parse_list_page_with_expat", side_effect=AssertionError("fell back to expat")):
        got = parse_list_page(body)
    assert got["IsTruncated"] is truncated and got.get("NextContinuationToken") == token
    assert [(c["Key"], c["Size"]) for c in got.get("Contents", [])] == [(key, size) for key, _, size in keys]


def test_a_page_with_an_item_short_of_a_field_is_read_by_expat():
    body = (b'<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><IsTruncated>false</IsTruncated>'
            b"<Contents><Key>a.jpg</Key><Size>1</Size></Contents>"
            b"<Contents><Key>b.jpg</Key><ETag>&quot;e&quot;</ETag><Size>2</Size></Contents></ListBucketResult>")  # fmt: skip
    page = parse_list_page(body)
    assert page["Contents"] == [{"Key": "a.jpg", "ETag": "", "Size": 1}, {"Key": "b.jpg", "ETag": '"e"', "Size": 2}]


def test_a_page_with_an_entity_xml_does_not_define_is_refused_as_expat_refuses_it():
    body = (b'<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><IsTruncated>false</IsTruncated>'
            b"<Contents><Key>a&nbsp;b.jpg</Key><ETag>&quot;e&quot;</ETag><Size>2</Size></Contents></ListBucketResult>")  # fmt: skip
    with pytest.raises(ET.ParseError):
        parse_list_page_with_expat(body)
    with pytest.raises(ET.ParseError):
        parse_list_page(body)
