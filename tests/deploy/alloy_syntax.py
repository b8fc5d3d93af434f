"""Grafana Alloy's configuration syntax, parsed in Python, and its component graph checked.

Alloy cannot be installed here (tests/deploy/log_pipeline.py says why), so
the project's `.alloy` files are read by this model of the syntax: blocks,
attributes, strings, lists, objects, references, calls, `+`, and Alloy's rule
that a list or object broken over lines has a `,` before each line break. Each
component kind the project uses is known with its arguments and exports, so a
misspelt argument, a reference to an undeclared component or to an export it
lacks is an error here as in Alloy. Anything else is `Unsupported`: a test
fails until it is modelled, instead of being skipped.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
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
