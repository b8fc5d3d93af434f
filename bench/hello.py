"""The ceiling: a bare Litestar app with one JSON route, served like the real app.

Run as `python -m bench.hello --port P`: the same uvicorn call as
`figachechnaya serve` (uvloop and httptools when installed, one process, no
access log, proxy headers on), so the difference between this and the app is
the app's own work. It must stay bare: no middleware, no database, nothing.
"""

from __future__ import annotations

import argparse

import uvicorn
from litestar import Litestar, get


@get("/", sync_to_thread=False)
def hello() -> dict[str, str]:
    return {"hello": "world"}


app = Litestar(route_handlers=[hello], logging_config=None)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.hello", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    args = parser.parse_args()
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        log_config=None,
        access_log=False,
        proxy_headers=True,
        forwarded_allow_ips="127.0.0.1",
    )


if __name__ == "__main__":
    main()
