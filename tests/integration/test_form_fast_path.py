"""issue 13 item 4: the form POST as plain ASGI answers exactly what the templates say,
with Litestar's CSRF semantics and every user text escaped."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import unquote_plus, urlencode

import pytest
from hypothesis import given
from hypothesis import strategies as st
from litestar.config.csrf import CSRFConfig
from litestar.middleware.csrf import CSRFMiddleware, generate_csrf_hash, generate_csrf_token
from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.testing import AsyncTestClient
from markupsafe import escape

from app.asgi import templates_directory
from app.web.csrf import CsrfTokens
from app.web.pages import form_value
from app.web.prerendered import ResultAnswer, escaped
from app.web.templating import configure_jinja
from app.web.views import ResultView

Client = AsyncTestClient[Any]
SECRET = "a-test-secret-of-some-length-000000000000"
HOSTILE = ['<script>alert("x")</script>', "{0}{}{{x}}", "Tom's & <b>", "\x00mM\x00", "кот"]


def engine() -> JinjaTemplateEngine:
    """The app's Jinja environment: its directory, its filters and globals, autoescaping."""
    jinja = JinjaTemplateEngine(directory=templates_directory())
    configure_jinja(jinja)
    return jinja


def results(text: str) -> list[ResultView | None]:
    views: list[ResultView | None] = [None]
    for stored in (True, False):
        for status in ("pending", "ready", "failed"):
            views.append(
                ResultView("01KBZX0000000000000000000" + text[:1], text, text, text, status, stored)
            )
    return views


@pytest.mark.parametrize("text", HOSTILE)
def test_the_prerendered_answer_is_what_jinja_renders_for_every_shape(text: str) -> None:
    template = engine().get_template("fragments/result.html")
    answer = ResultAnswer(template)
    for result in results(text):
        for error in (None, text, "Пишите по-русски"):
            for phrase in ("", text):
                expected = template.render(phrase=phrase, error=error, result=result, oob=True)
                assert answer.render(phrase=phrase, error=error, result=result) == expected.encode()


def test_a_template_that_transforms_a_text_is_refused_not_answered_wrongly() -> None:
    for source in ("{{ phrase|upper }}", "{{ phrase|length }}", "{{ phrase[:2] }}"):
        answer = ResultAnswer(engine().engine.from_string(source))
        with pytest.raises(RuntimeError, match="transforms a text"):
            answer.render(phrase="кот", error=None, result=None)


@given(st.text(alphabet=st.sampled_from("&<>\"'a б\x00;#{}")))
def test_escaping_is_markupsafes(text: str) -> None:
    assert escaped(text) == str(escape(text))


@given(st.text(alphabet=st.sampled_from("%+ aZ09BCDEFbcdefx8\\\u00d0\u00bf=&;")))
def test_form_values_decode_as_unquote_plus(text: str) -> None:
    raw = text.encode("latin-1")  # the body's bytes: Litestar reads them as latin-1
    assert form_value(raw) == unquote_plus(text)


@pytest.mark.parametrize(
    "text", ["%D0%92", "%d0%b2+%D0", "%D0a%92", "%E2%82", "%", "%4", "%zz", "%%41", "\\x41%41", "+"]
)
def test_escape_runs_broken_or_not_decode_as_unquote_plus(text: str) -> None:
    assert form_value(text.encode("latin-1")) == unquote_plus(text)


def test_a_verified_token_is_remembered_and_a_forged_one_never() -> None:
    tokens = CsrfTokens(SECRET)
    token = tokens.issue()
    forged = token[:64] + "0" * 64
    for _ in range(2):  # the second time from memory
        assert tokens.match(token, token)
        assert not tokens.match(forged, forged)
    assert not CsrfTokens("another secret").match(token, token)  # memory is per secret


@pytest.mark.parametrize("secret", [SECRET, "k" * 200, "ключ"])  # a key over 64 bytes is hashed
def test_tokens_are_signed_as_litestar_signs_them(secret: str) -> None:
    theirs = generate_csrf_token(secret)
    assert CsrfTokens(secret).match(theirs, theirs)
    mine = CsrfTokens(secret).issue()
    assert mine[64:] == generate_csrf_hash(mine[:64], secret)


def test_tokens_are_litestars_in_both_directions() -> None:
    ours = CsrfTokens(SECRET)
    theirs = generate_csrf_token(SECRET)
    assert ours.match(theirs, theirs)
    mine = ours.issue()
    assert len(mine) == len(theirs) == 128
    assert re.fullmatch("[0-9a-f]+", mine)
    assert not ours.match(mine, theirs)  # both valid, but not the same token: no double submit
    assert not CsrfTokens("another secret").match(mine, mine)
    forged = mine[:64] + "0" * 64
    assert not ours.match(forged, forged)
    assert not ours.match(mine[:64], mine[:64])  # no signature at all
    assert not ours.match("ё" * 128, "ё" * 128)  # not ASCII: refused, not a crash


def test_every_pair_of_tokens_is_judged_as_litestars_middleware_judges_it() -> None:
    litestar = CSRFMiddleware(app=None, config=CSRFConfig(secret=SECRET))  # type: ignore[arg-type]
    a, b = generate_csrf_token(SECRET), CsrfTokens(SECRET).issue()
    other_key = generate_csrf_token("another secret")
    candidates = [a, b, other_key, a[:64] + b[64:], a + "0", a[:-1], a[:64], a.upper(), "", "x"]
    ours = CsrfTokens(SECRET)
    for submitted in candidates:
        for cookie in candidates:
            expected = litestar._csrf_tokens_match(submitted, cookie)
            assert ours.match(submitted, cookie) is expected, (submitted, cookie)


async def page_token(client: Client) -> str:
    token = re.search(r'name="_csrf_token" value="([^"]+)"', (await client.get("/")).text)
    assert token
    return token.group(1)


async def total(client: Client) -> int:
    count: int = (await client.get("/api/v2/stats")).json()["total"]
    return count


async def test_the_token_in_the_field_alone_passes_without_the_header(client: Client) -> None:
    token = await page_token(client)
    response = await client.post("/", data={"phrase": "Велосипед", "_csrf_token": token})
    assert response.status_code == 200
    assert "Фигосипед" in response.text


async def test_a_header_token_that_is_not_the_cookies_is_refused(client: Client) -> None:
    await page_token(client)  # the cookie
    other = CsrfTokens("whatever").issue()
    headers = {"x-csrftoken": other, "HX-Request": "true"}
    response = await client.post("/", data={"phrase": "кот"}, headers=headers)
    assert response.status_code == 403
    assert await total(client) == 0


async def test_a_non_ascii_token_is_a_403(client: Client) -> None:
    await page_token(client)
    body = urlencode({"phrase": "кот", "_csrf_token": "ё" * 128})
    headers = {"content-type": "application/x-www-form-urlencoded"}
    assert (await client.post("/", content=body, headers=headers)).status_code == 403


async def test_without_the_header_a_multipart_field_is_not_searched(client: Client) -> None:
    token = await page_token(client)
    response = await client.post("/", files={"phrase": (None, "кот"), "_csrf_token": (None, token)})
    assert response.status_code == 403
    assert await total(client) == 0


async def test_a_body_over_the_limit_is_413_whether_or_not_the_header_came(client: Client) -> None:
    token = await page_token(client)
    big = {"phrase": "кот " * 1100, "_csrf_token": token}
    assert (await client.post("/", data=big)).status_code == 413
    assert (await client.post("/", data=big, headers={"x-csrftoken": token})).status_code == 413


async def test_a_field_given_twice_is_a_400_and_nothing_is_stored(client: Client) -> None:
    token = await page_token(client)
    body = urlencode([("phrase", "кот"), ("phrase", "пёс"), ("_csrf_token", token)])
    headers = {"content-type": "application/x-www-form-urlencoded", "x-csrftoken": token}
    assert (await client.post("/", content=body, headers=headers)).status_code == 400
    assert await total(client) == 0


async def test_the_page_allows_get_head_options_and_post_only(client: Client) -> None:
    options = await client.options("/")
    assert options.status_code == 204
    assert options.headers["allow"] == "GET, HEAD, OPTIONS, POST"
    head = await client.head("/")
    assert head.status_code == 200
    assert head.content == b""
    token = await page_token(client)
    assert (await client.put("/", headers={"x-csrftoken": token})).status_code == 405


async def test_the_cookie_is_set_once_and_the_page_keeps_its_token(client: Client) -> None:
    first = await client.get("/")
    assert first.headers["set-cookie"].startswith("figa_csrf=")
    assert "HttpOnly" in first.headers["set-cookie"]
    assert "SameSite=strict" in first.headers["set-cookie"]
    second = await client.get("/")
    assert "set-cookie" not in second.headers
    cookie = first.cookies["figa_csrf"]
    assert f'value="{cookie}"' in second.text  # the form carries the cookie's own token
    assert f'"x-csrftoken": "{cookie}"' in second.text
