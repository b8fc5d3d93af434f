"""Figalization ids (ULIDs that sort by creation time) and the image job message."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.domain.ids import UlidFactory, encode_ulid
from app.domain.image_job import ImageJob, ImageJobError

CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # base32 digits, in order
timestamps = st.integers(min_value=0, max_value=2**48 - 1)
randomness = st.integers(min_value=0, max_value=2**80 - 1)


# ULIDs


def ulid_timestamp_ms(ulid: str) -> int:
    """The first ten characters: the milliseconds, most significant digit first."""
    value = 0
    for char in ulid[:10]:
        value = value * 32 + CROCKFORD.index(char)
    return value


@given(timestamps, randomness)
def test_a_ulid_is_26_crockford_base32_characters(timestamp_ms: int, random80: int) -> None:
    ulid = encode_ulid(timestamp_ms, random80)
    assert len(ulid) == 26
    assert set(ulid) <= set(CROCKFORD)


@given(timestamps, randomness)
def test_the_timestamp_round_trips(timestamp_ms: int, random80: int) -> None:
    assert ulid_timestamp_ms(encode_ulid(timestamp_ms, random80)) == timestamp_ms


@given(timestamps, randomness)
def test_all_128_bits_round_trip(timestamp_ms: int, random80: int) -> None:
    value = 0
    for char in encode_ulid(timestamp_ms, random80):
        value = value * 32 + CROCKFORD.index(char)
    assert value == (timestamp_ms << 80) | random80


@given(timestamps, timestamps, randomness, randomness)
def test_ulids_sort_by_creation_time(earlier: int, later: int, r1: int, r2: int) -> None:
    if earlier < later:
        assert encode_ulid(earlier, r1) < encode_ulid(later, r2)


def test_ids_made_within_one_millisecond_strictly_increase() -> None:
    new_id = UlidFactory(clock_ms=lambda: 1_700_000_000_000, random80=lambda: 2**80 - 1)
    ids = [new_id() for _ in range(1000)]
    assert ids == sorted(set(ids))
    assert {ulid_timestamp_ms(i) for i in ids} == {1_700_000_000_000}


def test_ids_follow_the_clock() -> None:
    clock = iter([1_000, 1_000, 1_001, 5_000])
    new_id = UlidFactory(clock_ms=lambda: next(clock), random80=lambda: 12345)
    ids = [new_id() for _ in range(4)]
    assert ids == sorted(set(ids))
    assert [ulid_timestamp_ms(i) for i in ids] == [1_000, 1_000, 1_001, 5_000]


def test_a_clock_going_back_does_not_break_the_order() -> None:
    clock = iter([2_000, 1_999])
    new_id = UlidFactory(clock_ms=lambda: next(clock), random80=lambda: 0)
    first, second = new_id(), new_id()
    assert first < second
    assert ulid_timestamp_ms(second) == 2_000


# The image job message

JOB = {
    "v": 1,
    "figalization_id": "01J9Z8X7W6V5T4S3R2Q1P0NMKH",
    "phrase": "Велосипед",
    "result": "Фигосипед",
    "scheme": "figa",
    "scheme_name": "Фигачечная",
    "request_id": "req-1",
    "created_at": 1_700_000_000.25,
}
MISSING = object()  # `raw(field=MISSING)` leaves the field out
text = st.text(alphabet=st.characters(blacklist_categories=["Cs"]))


def raw(**changes: object) -> bytes:
    body = {**JOB, **changes}
    return json.dumps({k: v for k, v in body.items() if v is not MISSING}).encode()


@given(
    st.builds(
        ImageJob,
        figalization_id=text.filter(bool),
        phrase=text,
        result=text,
        scheme=text,
        scheme_name=text,
        request_id=text,
        created_at=st.floats(allow_nan=False, allow_infinity=False),
    )
)
def test_a_job_decodes_to_what_was_encoded(job: ImageJob) -> None:
    assert ImageJob.decode(job.encode()) == job


def test_a_job_is_version_1_json_in_utf8() -> None:
    job = ImageJob.decode(raw())
    assert json.loads(job.encode().decode("utf-8")) == JOB


def test_the_optional_fields_have_defaults() -> None:
    job = ImageJob.decode(raw(request_id=MISSING, created_at=MISSING))
    assert (job.request_id, job.created_at) == ("", 0.0)


@pytest.mark.parametrize("body", [b"", b"not json", b"{", b"\xff\xfe\xfa"], ids=repr)
def test_a_message_that_is_not_json_is_refused(body: bytes) -> None:
    with pytest.raises(ImageJobError, match="not JSON"):
        ImageJob.decode(body)


@pytest.mark.parametrize(
    "body",
    [b"[]", b'"job"', b"null", b"1", raw(v=2), raw(v="1"), raw(v=None), raw(v=MISSING)],
    ids=["list", "string", "null", "number", "v=2", 'v="1"', "v=null", "no v"],
)
def test_a_message_that_is_not_a_version_1_job_is_refused(body: bytes) -> None:
    with pytest.raises(ImageJobError, match="not a version-1 image job"):
        ImageJob.decode(body)


@pytest.mark.parametrize("field", ["figalization_id", "phrase", "result", "scheme", "scheme_name"])
@pytest.mark.parametrize(
    "value", [MISSING, None, 42, ["figa"]], ids=["missing", "null", "int", "list"]
)
def test_a_job_missing_a_text_field_or_with_a_wrong_type_is_refused(
    field: str, value: object
) -> None:
    with pytest.raises(ImageJobError, match=field):
        ImageJob.decode(raw(**{field: value}))


@pytest.mark.parametrize("created_at", ["yesterday", [1], {"s": 1}], ids=repr)
def test_a_job_with_a_non_numeric_creation_time_is_refused(created_at: object) -> None:
    with pytest.raises(ImageJobError):
        ImageJob.decode(raw(created_at=created_at))


def test_a_job_with_an_empty_figalization_id_is_refused() -> None:
    with pytest.raises(ImageJobError, match="empty figalization_id"):
        ImageJob.decode(raw(figalization_id=""))
