"""Where the routes live: every path that code other than its route must name, spelled once.

The route definitions, the envelope (which paths are the JSON APIs), the
links the pages and the APIs hand out and the templates (through
`templating`'s Jinja globals) all read it from here, so a route moved is
moved everywhere. (Metrics are not a route of the public port at all: see
`app.operations_port`.) It imports nothing.
"""

from __future__ import annotations

API = "/api"  # the JSON APIs, v2 and the compat v1: CORS, JSON errors, lean headers
API_PREFIX = API + "/"
API_V2 = API + "/v2"
FIGALIZATIONS = API_V2 + "/figalizations"  # POST creates; /{id} reads; /{id}/image the picture
RESULT_PAGES = "/r"
FRAGMENTS = "/fragments"
HINT_POLL = FRAGMENTS + "/hint"
TOTAL_POLL = FRAGMENTS + "/total"
LIVE_UPDATES = "/live"  # the page's switch that pauses and resumes its live updates


def image_path(figalization_id: str) -> str:
    """The picture of a figalization, as the v2 API serves it (or redirects to it)."""
    return f"{FIGALIZATIONS}/{figalization_id}/image"


def result_path(figalization_id: str) -> str:
    """The permanent page of a figalization."""
    return f"{RESULT_PAGES}/{figalization_id}"
