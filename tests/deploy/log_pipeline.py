"""The log agent's config files, read and run as Grafana Alloy would run them, in Python.

Neither Alloy nor Loki can be installed here (no Debian or PyPI build, and the
container and Go registries are out of reach), so the tests hold the project's
`.alloy` files to what this module can do faithfully:

- parse the Alloy configuration syntax (blocks, attributes, strings, lists,
  objects, references, calls, `+`) — a file Alloy would reject for its syntax
  fails here too;
- check the component graph: every reference names a declared component and
  an export that kind of component has;
- run a discovered target through `discovery.relabel` rules with Prometheus's
  relabelling semantics (anchored regex, `$1` of a missing group is empty, an
  empty label is no label), and a log line through `loki.process` stages.

Only the stages and actions the project uses are known; any other is an error
(`Unsupported`), so a new stage in a config fails the tests until it is
modelled here, instead of being silently skipped. Nothing here talks to a server.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

_TOKEN = re.compile(
    r"""
    (?P<space>\s+|//[^\n]*|/\*.*?\*/)
  | (?P<string>"(?:[^"\\\n]|\\.)*")
  | (?P<raw>`[^`]*`)
  | (?P<number>-?\d+(?:\.\d+)?)
  | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<punct>[{}\[\](),=.+])
    """,
    re.VERBOSE | re.DOTALL,
)


class Unsupported(AssertionError):
    """The config uses something this model of Alloy does not know."""


@dataclass(frozen=True)
class Reference:
    """`discovery.docker.containers.targets`: a component's export."""

    path: tuple[str, ...]


@dataclass(frozen=True)
class Call:
    name: str
    arguments: tuple[Any, ...]


@dataclass(frozen=True)
class Concatenation:
    parts: tuple[Any, ...]


@dataclass
class Block:
    name: str
    label: str | None
    attributes: dict[str, Any] = field(default_factory=dict)
    blocks: list[Block] = field(default_factory=list)

    def children(self, name: str) -> list[Block]:
        return [block for block in self.blocks if block.name == name]


def _tokens(text: str) -> list[tuple[str, str, int]]:
    tokens, position = [], 0
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None:
            line = text.count("\n", 0, position) + 1
            raise SyntaxError(f"line {line}: unexpected {text[position : position + 20]!r}")
        kind = match.lastgroup or ""
        if kind != "space":
            tokens.append((kind, match.group(), position))
        position = match.end()
    return tokens


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = _tokens(text)
        self.at = 0

    def fail(self, message: str) -> SyntaxError:
        position = self.tokens[self.at][2] if self.at < len(self.tokens) else len(self.text)
        return SyntaxError(f"line {self.text.count(chr(10), 0, position) + 1}: {message}")

    def peek(self, offset: int = 0) -> tuple[str, str]:
        if self.at + offset >= len(self.tokens):
            return ("end", "")
        kind, value, _ = self.tokens[self.at + offset]
        return kind, value

    def take(self, value: str | None = None, kind: str | None = None) -> str:
        token_kind, token = self.peek()
        if (value is not None and token != value) or (kind is not None and token_kind != kind):
            raise self.fail(f"expected {value or kind}, found {token!r}")
        self.at += 1
        return token

    def body(self, closing: str) -> tuple[dict[str, Any], list[Block]]:
        attributes: dict[str, Any] = {}
        blocks: list[Block] = []
        while self.peek()[1] != closing:
            name = self.take(kind="name")
            if self.peek()[1] == "=":
                self.take("=")
                if name in attributes:
                    raise self.fail(f"attribute {name} set twice")
                attributes[name] = self.expression()
                continue
            while self.peek()[1] == ".":
                self.take(".")
                name += "." + self.take(kind="name")
            label = None
            if self.peek()[0] == "string":
                label = json.loads(self.take(kind="string"))
            self.take("{")
            inner_attributes, inner_blocks = self.body("}")
            self.take("}")
            blocks.append(Block(name, label, inner_attributes, inner_blocks))
        return attributes, blocks

    def expression(self) -> Any:
        parts = [self.operand()]
        while self.peek()[1] == "+":
            self.take("+")
            parts.append(self.operand())
        return parts[0] if len(parts) == 1 else Concatenation(tuple(parts))

    def operand(self) -> Any:
        kind, token = self.peek()
        if kind == "string":
            self.at += 1
            return json.loads(token)
        if kind == "raw":
            self.at += 1
            return token[1:-1]
        if kind == "number":
            self.at += 1
            return float(token) if "." in token else int(token)
        if token == "[":
            return self.sequence("[", "]", self.expression)
        if token == "{":
            return dict(self.sequence("{", "}", self.entry))
        if kind == "name":
            return self.reference_or_call()
        raise self.fail(f"unexpected {token!r}")

    def sequence(self, opening: str, closing: str, item: Any) -> list[Any]:
        self.take(opening)
        items = []
        while self.peek()[1] != closing:
            items.append(item())
            if self.peek()[1] != closing:
                self.take(",")
            elif self.newline_before_next():
                # As in Go, a line break ends the item: Alloy wants `,` before it.
                raise self.fail(f"missing ',' before the newline ahead of {closing!r}")
        self.take(closing)
        return items

    def newline_before_next(self) -> bool:
        _, value, start = self.tokens[self.at - 1]
        following = self.tokens[self.at][2] if self.at < len(self.tokens) else len(self.text)
        return "\n" in self.text[start + len(value) : following]

    def entry(self) -> tuple[str, Any]:
        kind, _ = self.peek()
        key = json.loads(self.take(kind="string")) if kind == "string" else self.take(kind="name")
        self.take("=")
        return key, self.expression()

    def reference_or_call(self) -> Any:
        path = [self.take(kind="name")]
        if path[0] in ("true", "false", "null"):
            return {"true": True, "false": False, "null": None}[path[0]]
        while self.peek()[1] == ".":
            self.take(".")
            path.append(self.take(kind="name"))
        if self.peek()[1] == "(":
            return Call(".".join(path), tuple(self.sequence("(", ")", self.expression)))
        return Reference(tuple(path))


def parse(text: str) -> list[Block]:
    """The top-level blocks of an Alloy configuration file."""
    parser = _Parser(text)
    attributes, blocks = parser.body("")
    if attributes:
        raise SyntaxError(f"top-level attributes are not Alloy components: {sorted(attributes)}")
    return blocks


# What each component kind the project uses exports, and which arguments it must have.
EXPORTS = {
    "discovery.docker": {"targets"},
    "discovery.kubernetes": {"targets"},
    "discovery.relabel": {"output", "rules"},
    "loki.source.docker": set(),
    "loki.source.kubernetes": set(),
    "loki.process": {"receiver"},
    "loki.write": {"receiver"},
}
REQUIRED = {
    "discovery.docker": {"host"},
    "discovery.kubernetes": {"role"},
    "discovery.relabel": {"targets"},
    "loki.source.docker": {"host", "targets", "forward_to"},
    "loki.source.kubernetes": {"targets", "forward_to"},
    "loki.process": {"forward_to"},
    "loki.write": set(),
}


# The arguments (attributes) and blocks each of them accepts, from Alloy's reference;
# a misspelt one (`forward_too`) is an error there and here.
_STAGES: dict[str, tuple[set[str], dict[str, Any]]] = {
    "stage.json": ({"expressions", "source", "drop_malformed"}, {}),
    "stage.labels": ({"values"}, {}),
    "stage.structured_metadata": ({"values"}, {}),
    "stage.timestamp": ({"source", "format", "fallback_formats", "location"}, {}),
}
_STAGES["stage.match"] = ({"selector", "action", "pipeline_name"}, _STAGES)
_RULE = {
    "source_labels", "separator", "regex", "modulus", "target_label", "replacement", "action"
}  # fmt: skip
SCHEMA: dict[str, tuple[set[str], dict[str, Any]]] = {
    "discovery.docker": (
        {"host", "port", "refresh_interval"},
        {"filter": ({"name", "values"}, {})},
    ),
    "discovery.kubernetes": (
        {"role", "api_server", "kubeconfig_file"},
        {
            "selectors": ({"role", "field", "label"}, {}),
            "namespaces": ({"names", "own_namespace"}, {}),
        },
    ),
    "discovery.relabel": ({"targets"}, {"rule": (_RULE, {})}),
    "loki.source.docker": (
        {"host", "targets", "forward_to", "labels", "relabel_rules", "refresh_interval"},
        {},
    ),
    "loki.source.kubernetes": ({"targets", "forward_to"}, {"clustering": ({"enabled"}, {})}),
    "loki.process": ({"forward_to"}, _STAGES),
    "loki.write": (
        {"external_labels"},
        {"endpoint": ({"url", "name", "headers", "batch_wait", "batch_size", "tenant_id"}, {})},
    ),
}


def check_arguments(block: Block, schema: tuple[set[str], dict[str, Any]], where: str) -> None:
    arguments, blocks = schema
    unknown = set(block.attributes) - arguments
    if unknown:
        raise SyntaxError(f"{where}: unknown argument {sorted(unknown)}")
    for child in block.blocks:
        if child.name not in blocks:
            raise Unsupported(f"{where}: block {child.name} is not modelled")
        check_arguments(child, blocks[child.name], f"{where} > {child.name}")


def components(blocks: list[Block]) -> dict[str, Block]:
    """`kind.label` → its block; every kind known, every label unique, its arguments known
    and the required ones there."""
    named: dict[str, Block] = {}
    for block in blocks:
        if block.name not in EXPORTS:
            raise Unsupported(f"component {block.name} is not modelled (tests/deploy/log_pipeline)")
        check_arguments(block, SCHEMA[block.name], f"{block.name} {block.label!r}")
        if block.label is None:
            raise SyntaxError(f"{block.name} needs a label")
        key = f"{block.name}.{block.label}"
        if key in named:
            raise SyntaxError(f"{key} declared twice")
        missing = REQUIRED[block.name] - set(block.attributes)
        if missing:
            raise SyntaxError(f"{key} lacks {sorted(missing)}")
        named[key] = block
    return named


def references(value: Any) -> list[Reference]:
    if isinstance(value, Reference):
        return [value]
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, Concatenation | Call):
        value = list(value.parts if isinstance(value, Concatenation) else value.arguments)
    if isinstance(value, list):
        return [found for item in value for found in references(item)]
    return []


def all_references(block: Block) -> list[Reference]:
    found = [ref for value in block.attributes.values() for ref in references(value)]
    return found + [ref for child in block.blocks for ref in all_references(child)]


def resolve(named: dict[str, Block], reference: Reference) -> tuple[str, str]:
    """(component, export) a reference names; an unknown one is an error."""
    for split in range(len(reference.path) - 1, 1, -1):
        key = ".".join(reference.path[:split])
        if key in named:
            export = ".".join(reference.path[split:])
            kind = named[key].name
            if export not in EXPORTS[kind]:
                raise SyntaxError(f"{kind} exports no {export} ({'.'.join(reference.path)})")
            return key, export
    raise SyntaxError(f"{'.'.join(reference.path)} names no declared component")


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
