"""Load from `wrk`: run it against a loopback URL, and read what it printed.

wrk (Debian's package) is a C event loop: one thread drives hundreds of
connections and leaves the machine's other core to the server, so the
numbers are the server's, not the load generator's. Every run is bounded by
`--duration`; requests cycle through a prepared file (method, path and body
per line) so that each request figalizes a different phrase. A paced run
(`pace_ms`) makes every connection wait that long between its requests —
simulated clients instead of a flood — and spreads the connections' first
requests over one period, so they do not arrive in lockstep.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

_REQUESTS_LUA = r"""
-- Cycles through requests read from a file: METHOD<TAB>PATH<TAB>BODY per line.
local requests = {}
local position = 0
connections = 1

function init(args)
  for line in io.lines(args[1]) do
    local method, path, body = line:match("^([^\t]*)\t([^\t]*)\t(.*)$")
    if body == "" then body = nil end
    requests[#requests + 1] = wrk.format(method, path, nil, body)
  end
  connections = tonumber(args[2]) or 1
  period = tonumber(args[3]) or 0
end

function request()
  position = position % #requests + 1
  return requests[position]
end
"""

_PACED_LUA = r"""
-- Each connection waits `period` ms between requests; first waits are spread over one period.
local calls = 0

function delay()
  calls = calls + 1
  if calls <= connections then
    return math.random(0, period)
  end
  return period
end
"""

_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}
_TIME = re.compile(r"([\d.]+)(us|ms|s|m|h)$")


class WrkError(RuntimeError):
    """wrk could not run or printed something we cannot read; the message has its output."""


@dataclass(frozen=True, slots=True)
class Request:
    method: str
    path: str
    body: str = ""


@dataclass(frozen=True, slots=True)
class WrkResult:
    connections: int
    seconds: float
    requests: int
    requests_per_second: float
    p50_ms: float
    p75_ms: float
    p90_ms: float
    p99_ms: float
    non_2xx: int  # wrk counts 3xx as fine too; the routes measured never redirect
    socket_errors: int

    @property
    def clean(self) -> bool:
        return self.non_2xx == 0 and self.socket_errors == 0

    @property
    def answered_2xx(self) -> int:
        return self.requests - self.non_2xx


def parse_wrk(text: str, connections: int) -> WrkResult:
    """Read wrk's `--latency` report (its plain text, the same in every wrk 4.x)."""
    totals = re.search(r"(\d+) requests in ([\d.]+)(us|ms|s|m|h),", text)
    rate = re.search(r"Requests/sec:\s+([\d.]+)", text)
    percentiles = dict(re.findall(r"^\s+(50|75|90|99)%\s+(\S+)\s*$", text, flags=re.M))
    if totals is None or rate is None or len(percentiles) != 4:
        raise WrkError(f"cannot read the wrk report:\n{text}")
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    socket = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text
    )
    return WrkResult(
        connections=connections,
        seconds=parse_duration_ms(totals.group(2) + totals.group(3)) / 1000,
        requests=int(totals.group(1)),
        requests_per_second=float(rate.group(1)),
        p50_ms=parse_duration_ms(percentiles["50"]),
        p75_ms=parse_duration_ms(percentiles["75"]),
        p90_ms=parse_duration_ms(percentiles["90"]),
        p99_ms=parse_duration_ms(percentiles["99"]),
        non_2xx=int(non_2xx.group(1)) if non_2xx else 0,
        socket_errors=sum(int(n) for n in socket.groups()) if socket else 0,
    )


def parse_duration_ms(value: str) -> float:
    """`850.00us`, `2.40ms`, `1.02s`, `1.50m` → milliseconds."""
    match = _TIME.match(value.strip())
    if match is None:
        raise WrkError(f"not a wrk duration: {value!r}")
    return float(match.group(1)) * _UNITS[match.group(2)]


class Wrk:
    """Runs wrk against one base URL; request files and scripts live in a temp folder."""

    def __init__(self, base_url: str) -> None:
        binary = shutil.which("wrk")
        if binary is None:
            raise WrkError("wrk is not installed (Debian: apt-get install wrk)")
        self.binary = binary
        self.base_url = base_url.rstrip("/")
        self._folder = tempfile.TemporaryDirectory(prefix="figa-wrk-")  # removed with us
        self.workdir = Path(self._folder.name)
        self._files = 0

    async def run(
        self,
        path: str = "/",
        *,
        connections: int,
        seconds: float,
        requests: Sequence[Request] = (),
        headers: Sequence[str] = (),
        pace_ms: int = 0,
    ) -> WrkResult:
        """One bounded run; `requests` cycle (else GET `path`); `headers` like `Name: value`."""
        argv = [self.binary, "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s"]
        argv += ["--latency", "--timeout", "10s"]
        for header in headers:
            argv += ["-H", header]
        script_args: list[str] = []
        if requests or pace_ms:
            script, script_args = self._script(requests or [Request("GET", path)], pace_ms)
            script_args = [*script_args, str(connections), str(pace_ms)]
            argv += ["-s", str(script)]
        argv.append(self.base_url + path)
        if script_args:
            argv += ["--", *script_args]
        output = await _run_bounded(argv, within=seconds + 30)
        return parse_wrk(output, connections)

    def _script(self, requests: Sequence[Request], pace_ms: int) -> tuple[Path, list[str]]:
        self._files += 1
        listing = self.workdir / f"requests-{self._files}.tsv"
        lines = []
        for item in requests:
            if any(c in part for part in (item.method, item.path, item.body) for c in "\t\n"):
                raise WrkError(f"a request line cannot hold tabs or newlines: {item!r}")
            lines.append(f"{item.method}\t{item.path}\t{item.body}\n")
        listing.write_text("".join(lines), encoding="utf-8")
        script = self.workdir / ("paced.lua" if pace_ms else "requests.lua")
        script.write_text(_REQUESTS_LUA + (_PACED_LUA if pace_ms else ""), encoding="utf-8")
        return script, [str(listing)]


async def _run_bounded(argv: list[str], *, within: float) -> str:
    process = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    try:
        output, _ = await asyncio.wait_for(process.communicate(), within)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise WrkError(f"wrk did not finish within {within:.0f}s: {' '.join(argv)}") from None
    text = output.decode("utf-8", "replace")
    if process.returncode != 0:
        raise WrkError(f"wrk exited with {process.returncode}:\n{text}")
    return text
