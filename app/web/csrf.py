"""The form's CSRF check: Litestar's double-submit cookie, written as plain ASGI.

The token semantics are exactly those of `litestar.middleware.csrf` (2.x),
so tokens issued by either are accepted by the other: a token is 32 random
bytes in hex followed by their HMAC-SHA256 under the secret, in hex; a safe
request (GET, HEAD, OPTIONS) gets the `figa_csrf` cookie when it has none
(HttpOnly, SameSite=Strict, Path=/, Secure behind TLS); any other request
must carry a token in the `x-csrftoken` header or, when that header is
absent and the body is a urlencoded form, in its `_csrf_token` field; both
the submitted token and the cookie must carry a valid signature and the same
random part (compared in constant time), else 403. The token is left in the
scope (`ScopeState.csrf_token`) for the templates' `csrf_token()`.

Why not Litestar's middleware: it builds a `Request`, parses every header
and cookie into dictionaries and, without the header, the form — about a
sixth of the form POST's cost, the hottest route people use. This one reads
the three headers it needs in one pass over the raw list. Two differences,
both refusals: a multipart body (our form never sends one) is not searched
for the field, and a token that is not ASCII is refused (Litestar's constant
time comparison raised on it: a 500).
"""

from __future__ import annotations

import hmac
import secrets
from secrets import compare_digest
from urllib.parse import parse_qsl

from litestar._parsers import parse_cookie_string  # Litestar's exact cookie rules
from litestar.datastructures.cookie import Cookie
from litestar.enums import ScopeType
from litestar.exceptions import PermissionDeniedException
from litestar.types import ASGIApp, HTTPRequestEvent, Message, Receive, ReceiveMessage, Scope, Send
from litestar.utils.scope.state import ScopeState

from app.web.asgi_answers import read_body

COOKIE = "figa_csrf"
HEADER = b"x-csrftoken"
FIELD = "_csrf_token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_RANDOM_HEX = 64  # 32 bytes
_REMEMBERED = 4096  # verified tokens kept (~1 MB at most)
_URL_ENCODED = b"application/x-www-form-urlencoded"
_REFUSED = "CSRF token verification failed"


class CsrfTokens:
    """Issue and verify tokens signed with one secret (`FIGA_SECRET_KEY`)."""

    def __init__(self, secret: str) -> None:
        self._keyed = hmac.new(secret.encode(), digestmod="sha256")  # copied per token
        self._signed: set[str] = set()  # tokens whose signature was checked: see `signed`

    def issue(self) -> str:
        random_part = secrets.token_hex(_RANDOM_HEX // 2)
        return random_part + self._sign(random_part)

    def match(self, submitted: str, cookie: str) -> bool:
        """Both signed by us and the same token: the double submit. A valid token is its
        random part and that part's one signature, so two valid tokens with the same random
        part are the same string: checking the equality and one signature is Litestar's
        check (both signatures, then the random parts) with one HMAC fewer."""
        if not (submitted.isascii() and cookie.isascii()):
            return False
        return compare_digest(submitted, cookie) and self.signed(cookie)

    def signed(self, token: str) -> bool:
        """Whether `token` carries our signature. A visitor posts with one token for the
        whole visit, so a token once verified is remembered (up to `_REMEMBERED`, then
        forgotten all at once) and its next posts cost a set lookup, not an HMAC. Only
        valid tokens are remembered: a lookup that finds one needed that exact token."""
        if token in self._signed:
            return True
        if not (token.isascii() and self._random_part(token) is not None):
            return False
        if len(self._signed) >= _REMEMBERED:
            self._signed.clear()
        self._signed.add(token)
        return True

    def _random_part(self, token: str) -> str | None:
        if len(token) <= _RANDOM_HEX:
            return None
        random_part, signature = token[:_RANDOM_HEX], token[_RANDOM_HEX:]
        return random_part if compare_digest(signature, self._sign(random_part)) else None

    def _sign(self, random_part: str) -> str:
        # HMAC-SHA256 hex, as Litestar's `generate_csrf_hash`; a copy of the keyed state
        # skips hashing the key's pads again for every token
        mac = self._keyed.copy()
        mac.update(random_part.encode())
        return mac.hexdigest()


class CsrfMiddleware:
    def __init__(self, app: ASGIApp, *, secret: str, secure_cookie: bool, body_limit: int) -> None:
        self._app = app
        self._tokens = CsrfTokens(secret)
        self._secure_cookie = secure_cookie
        self._body_limit = body_limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await self._app(scope, receive, send)
            return
        cookie, submitted, content_type = _read_headers(scope)
        state = ScopeState.from_scope(scope)
        if scope.get("method") in SAFE_METHODS:
            state.csrf_token = cookie or self._tokens.issue()
            if not cookie:
                send = self._setting_cookie(scope, send, state.csrf_token)
            await self._app(scope, receive, send)
            return
        if not submitted and content_type == _URL_ENCODED:
            body = await read_body(scope, receive, limit=self._body_limit)
            if body is None:
                return  # the client went away before sending its body: nothing to answer
            submitted = _form_field(body, FIELD)
            receive = _replaying(body, receive)
        if not (submitted and cookie and self._tokens.match(submitted, cookie)):
            raise PermissionDeniedException(_REFUSED)
        state.csrf_token = submitted
        await self._app(scope, receive, send)

    def _setting_cookie(self, scope: Scope, send: Send, token: str) -> Send:
        cookie = Cookie(
            key=COOKIE,
            value=token,
            path="/",
            httponly=True,
            samesite="strict",
            # https from the client (its own TLS, or X-Forwarded-Proto of a trusted proxy)
            secure=self._secure_cookie or scope.get("scheme") == "https",
        )
        header = (b"set-cookie", cookie.to_header(header="").encode("latin-1"))

        async def send_with_cookie(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), header]
            await send(message)

        return send_with_cookie


def _read_headers(scope: Scope) -> tuple[str | None, str | None, bytes]:
    """The CSRF cookie, the token header and the media type, in one pass (the first
    header of each name counts, as Litestar's `Headers.get`)."""
    cookies: bytes | None = None
    submitted: str | None = None
    content_type = b""
    for name, value in scope["headers"]:
        if name == b"cookie" and cookies is None:
            cookies = value
        elif name == HEADER and submitted is None:
            submitted = value.decode("latin-1")
        elif name == b"content-type" and not content_type:
            content_type = value.split(b";", 1)[0].strip().lower()
    return _cookie(cookies, COOKIE) if cookies else None, submitted, content_type


def _cookie(header: bytes, wanted: str) -> str | None:
    """One cookie's value, parsed as Litestar's `parse_cookie_string` does (the last
    of a repeated name wins, values unquoted)."""
    return parse_cookie_string(header.decode("latin-1")).get(wanted)


def _form_field(body: bytes, name: str) -> str | None:
    """A urlencoded field as Litestar parses forms (latin-1, blanks kept, first value)."""
    for key, value in parse_qsl(body.decode("latin-1"), keep_blank_values=True):
        if key == name:
            return value
    return None


def _replaying(body: bytes, receive: Receive) -> Receive:
    """The body once more for the handler, then the client's own messages."""
    pending = [body]

    async def replay() -> ReceiveMessage:
        if pending:
            event: HTTPRequestEvent = {
                "type": "http.request",
                "body": pending.pop(),
                "more_body": False,
            }
            return event
        return await receive()

    return replay
