"""The log agent's rules run in Python as Grafana Alloy runs them: relabelling, then stages.

Neither Alloy nor Loki can be installed here (no Debian or PyPI build, and the
container and Go registries are out of reach), so the tests run the project's
`.alloy` files (parsed by tests/deploy/alloy_syntax.py) through this model:
a discovered target through `discovery.relabel` rules with Prometheus's
relabelling semantics (anchored regex, `$1` of a missing group is empty, an
empty label is no label), and a log line through the `loki.process` stages
the project uses (json, labels, structured_metadata, timestamp, match) to the
stream labels, structured metadata and time Loki would store; and a LogQL
query of the shape Grafana's request-id link sends, on the result. Any other
stage, relabel action or query shape is `Unsupported`. Nothing here talks to a server.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from tests.deploy.alloy_syntax import (
    Block,
    Unsupported,
    all_references,
    components,
    parse,
    references,
    resolve,
)

# --- discovery.relabel: Prometheus relabelling ------------------------------------------


def _expand(replacement: str, match: re.Match[str]) -> str:
    """Go's regexp Expand, as relabelling uses it: `$1`, `${1}`, `$name`; a missing group is ''."""

    def group(found: re.Match[str]) -> str:
        name = found.group(1) or found.group(2)
        try:
            value = match.group(int(name) if name.isdigit() else name)
        except IndexError:  # no such group
            return ""
        return value or ""

    return re.sub(r"\$\{(\w+)\}|\$(\w+)", group, replacement)


def relabel(rules: list[Block], labels: dict[str, str]) -> dict[str, str] | None:
    """The target's labels after the rules, or None when a rule drops it."""
    labels = dict(labels)
    for rule in rules:
        arguments = dict(rule.attributes)
        action = arguments.pop("action", "replace")
        sources = arguments.pop("source_labels", [])
        separator = arguments.pop("separator", ";")
        pattern = re.compile(f"^(?:{arguments.pop('regex', '(.*)')})$")
        replacement = arguments.pop("replacement", "$1")
        target = arguments.pop("target_label", None)
        if arguments:
            raise Unsupported(f"relabel arguments {sorted(arguments)} are not modelled")
        value = separator.join(labels.get(name, "") for name in sources)
        match = pattern.match(value)
        if action == "keep":
            if match is None:
                return None
        elif action == "drop":
            if match is not None:
                return None
        elif action == "replace":
            if target is None:
                raise SyntaxError("a replace rule needs target_label")
            if match is not None:
                labels[target] = _expand(replacement, match)
        else:
            raise Unsupported(f"relabel action {action} is not modelled")
        labels = {name: value for name, value in labels.items() if value != ""}
    return labels


def stream_labels(labels: dict[str, str]) -> dict[str, str]:
    """What a loki.source keeps of a target's labels: none of the `__` ones."""
    return {name: value for name, value in labels.items() if not name.startswith("__")}


# --- loki.process ---------------------------------------------------------------------


@dataclass
class Entry:
    """One log line on its way to Loki: its stream labels, structured metadata, time."""

    line: str
    labels: dict[str, str]
    metadata: dict[str, str] = field(default_factory=dict)
    timestamp: datetime | None = None
    extracted: dict[str, Any] = field(default_factory=dict)


_SELECTOR = re.compile(r'\s*(\w+)\s*=\s*"((?:[^"\\]|\\.)*)"\s*(?:,|$)')


def selector_matches(selector: str, labels: dict[str, str]) -> bool:
    """A LogQL stream selector of equality matchers only: `{a="x", b="y"}`."""
    inner = selector.strip()
    if not (inner.startswith("{") and inner.endswith("}")):
        raise SyntaxError(f"not a stream selector: {selector}")
    inner = inner[1:-1]
    matchers, position = [], 0
    while position < len(inner):
        found = _SELECTOR.match(inner, position)
        if found is None:
            raise Unsupported(f"only equality matchers are modelled: {selector}")
        matchers.append((found.group(1), json.loads(f'"{found.group(2)}"')))
        position = found.end()
    if not matchers:
        raise SyntaxError(f"an empty selector: {selector}")
    return all(labels.get(name, "") == value for name, value in matchers)


def _json_stage(entry: Entry, arguments: dict[str, Any]) -> None:
    source = arguments.get("source")
    text = entry.line if source is None else entry.extracted.get(source)
    try:
        document = json.loads(text) if isinstance(text, str) else None
    except json.JSONDecodeError:
        document = None  # Alloy logs it and passes the line on unchanged (drop_malformed off)
    if not isinstance(document, dict):
        return
    for name, expression in arguments["expressions"].items():
        key = expression or name
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
            raise Unsupported(f"JMESPath {key!r}: only a top-level key is modelled")
        if key in document:
            entry.extracted[name] = document[key]


def _as_label_value(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value)  # Alloy turns numbers and booleans into their text


def _copy_stage(entry: Entry, arguments: dict[str, Any], into: dict[str, str]) -> None:
    for name, source in arguments["values"].items():
        key = source or name
        if key in entry.extracted and entry.extracted[key] is not None:
            into[name] = _as_label_value(entry.extracted[key])


def _timestamp_stage(entry: Entry, arguments: dict[str, Any]) -> None:
    if arguments["format"] != "RFC3339":
        raise Unsupported(f"timestamp format {arguments['format']} is not modelled")
    value = entry.extracted.get(arguments["source"])
    if isinstance(value, str):
        # Go's RFC3339 parse: a fraction of a second may follow; an offset or Z is required.
        if not re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)", value):
            raise AssertionError(f"{value!r} is not RFC 3339: Alloy would keep the read time")
        entry.timestamp = datetime.fromisoformat(value.replace("Z", "+00:00"))


def run_stages(stages: list[Block], entry: Entry) -> Entry:
    for stage in stages:
        arguments = stage.attributes
        if stage.name == "stage.json":
            _json_stage(entry, arguments)
        elif stage.name == "stage.labels":
            _copy_stage(entry, arguments, entry.labels)
            entry.labels = {name: value for name, value in entry.labels.items() if value != ""}
        elif stage.name == "stage.structured_metadata":
            _copy_stage(entry, arguments, entry.metadata)
        elif stage.name == "stage.timestamp":
            _timestamp_stage(entry, arguments)
        elif stage.name == "stage.match":
            if set(arguments) - {"selector"}:
                raise Unsupported(f"stage.match arguments {sorted(arguments)}")
            if selector_matches(arguments["selector"], entry.labels):
                run_stages(stage.blocks, entry)
        else:
            raise Unsupported(f"{stage.name} is not modelled (tests/deploy/log_pipeline.py)")
    return entry


@dataclass(frozen=True)
class Pipeline:
    """One parsed config: relabel a discovered target, then process its lines."""

    named: dict[str, Block]

    @classmethod
    def from_text(cls, text: str) -> Pipeline:
        named = components(parse(text))
        for block in named.values():
            for reference in all_references(block):
                resolve(named, reference)
        return cls(named)

    def only(self, kind: str) -> Block:
        (block,) = [block for block in self.named.values() if block.name == kind]
        return block

    def source(self) -> Block:
        (block,) = [b for b in self.named.values() if b.name.startswith("loki.source.")]
        return block

    def labels_of(self, target: dict[str, str]) -> dict[str, str] | None:
        """The stream labels the source gives a discovered target's lines (None: not read)."""
        (reference,) = references(self.source().attributes["targets"])
        key, export = resolve(self.named, reference)
        if export != "output":
            raise Unsupported(f"the source reads {key}.{export}, not a discovery.relabel output")
        kept = relabel(self.named[key].children("rule"), target)
        return None if kept is None else stream_labels(kept)

    def process(self, line: str, labels: dict[str, str]) -> Entry:
        """The line as it reaches loki.write, through the processor the source forwards to."""
        (reference,) = references(self.source().attributes["forward_to"])
        key, _ = resolve(self.named, reference)
        processor = self.named[key]
        entry = run_stages(processor.blocks, Entry(line, dict(labels)))
        (onward,) = references(processor.attributes["forward_to"])
        assert resolve(self.named, onward)[0].startswith("loki.write."), onward
        return entry

    def push_urls(self) -> list[str]:
        return [
            endpoint.attributes["url"]
            for block in self.named.values()
            if block.name == "loki.write"
            for endpoint in block.children("endpoint")
        ]


_QUERY = re.compile(r"^\s*(\{[^}]*\})\s*(?:\|\s*(\w+)\s*=\s*\"((?:[^\"\\]|\\.)*)\")?\s*$")


def logql_selects(query: str, entry: Entry) -> bool:
    """A LogQL log query of the shape `{selector} | key="value"` (a label filter that also
    reads structured metadata, as Loki 3's does), applied to one processed entry."""
    found = _QUERY.match(query)
    if found is None:
        raise Unsupported(f'LogQL beyond `{{…}} | key="value"` is not modelled: {query}')
    selector, key, value = found.groups()
    if not selector_matches(selector, entry.labels):
        return False
    if key is None:
        return True
    wanted: str = json.loads(f'"{value}"')
    return {**entry.labels, **entry.metadata}.get(key) == wanted
