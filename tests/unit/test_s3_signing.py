"""`app.s3_put.sign` signs an S3 PUT exactly as botocore's own SigV4 signer does."""

from __future__ import annotations

import datetime

import pytest
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import ReadOnlyCredentials

from app.s3_put import sign

MOMENT = datetime.datetime(2026, 12, 1, 21, 5, 7, tzinfo=datetime.UTC)


def botocore_headers(url: str, body: bytes, credentials: ReadOnlyCredentials) -> dict[str, str]:
    request = AWSRequest(method="PUT", url=url, data=body, headers={"Content-Type": "image/png"})
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("botocore.auth.get_current_datetime", lambda: MOMENT.replace(tzinfo=None))
        S3SigV4Auth(credentials, "s3", "ru-central1").add_auth(request)
    return {name.lower(): value for name, value in request.headers.items()}


@pytest.mark.parametrize(
    "url",
    [
        "https://storage.yandexcloud.net/pictures/p/01JABCDEF/card.png",
        "http://127.0.0.1:9000/pictures/p/01JABCDEF/card.png",
        "https://storage.example:8443/b/with%20space/%D0%BA.png",
        "http://minio:80/b/k.png",
    ],
)
@pytest.mark.parametrize("token", [None, "session-token/xyz=="])
def test_the_signature_is_botocores_for_the_same_request_and_moment(
    url: str, token: str | None
) -> None:
    credentials = ReadOnlyCredentials("YCAJEexample", "secret/with+chars", token)
    body = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 40
    ours = sign(
        "PUT",
        url,
        body,
        content_type="image/png",
        credentials=credentials,
        region="ru-central1",
        now=MOMENT,
    )
    theirs = botocore_headers(url, body, credentials)
    assert ours["authorization"] == theirs["authorization"]
    for name in ("x-amz-date", "x-amz-content-sha256", "x-amz-security-token"):
        assert ours.get(name) == theirs.get(name)


def test_a_different_body_or_moment_gives_another_signature() -> None:
    credentials = ReadOnlyCredentials("AK", "SK", None)
    url = "http://127.0.0.1:9000/b/k.png"

    def signature(body: bytes, now: datetime.datetime) -> str:
        headers = sign(
            "PUT", url, body, content_type="image/png", credentials=credentials, region="r", now=now
        )
        return headers["authorization"]

    later = MOMENT + datetime.timedelta(seconds=1)
    assert len({signature(b"a", MOMENT), signature(b"b", MOMENT), signature(b"a", later)}) == 3
