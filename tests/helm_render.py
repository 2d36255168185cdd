"""Renders the Helm chart in deploy/helm without Helm, for the tests: the few template
actions the chart uses, with Go template whitespace trimming, and nothing else (an action it
does not know fails the test, so the chart cannot drift into what this cannot check).

Known: ``{{ .Values.a.b }}``, ``{{ $var }}``, ``| quote``, ``| nindent N``, ``toYaml X``,
``include "name" .``, ``{{ if X }}``, ``{{ range $k, $v := X }}``, ``{{ define "name" }}``,
``{{ end }}`` and ``{{/* comments */}}``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml

_ACTION = re.compile(r"\{\{(-?)\s*(.*?)\s*(-?)\}\}", re.DOTALL)


def _tokens(text: str) -> list[tuple[str, str]]:
    """``("text", s)`` and ``("action", s)``, with ``{{-``/``-}}`` trimming applied."""
    out: list[tuple[str, str]] = []
    position = 0
    for match in _ACTION.finditer(text):
        before = text[position : match.start()]
        if match.group(1):
            before = before.rstrip()
        out.append(("text", before))
        out.append(("action", match.group(2)))
        position = match.end()
        if match.group(3):
            rest = text[position:]
            position += len(rest) - len(rest.lstrip())
    out.append(("text", text[position:]))
    return out


def _parse(tokens: list[tuple[str, str]], i: int = 0) -> tuple[list[Any], int]:
    """A tree of text, actions and ``("if"|"range"|"define", head, body)`` blocks."""
    nodes: list[Any] = []
    while i < len(tokens):
        kind, value = tokens[i]
        i += 1
        if kind == "text":
            nodes.append(value)
        elif value.startswith("/*"):
            continue
        elif value == "end":
            return nodes, i
        elif value.split()[0] in ("if", "range", "define"):
            body, i = _parse(tokens, i)
            nodes.append((value.split()[0], value.split(None, 1)[1], body))
        else:
            nodes.append(("action", value))
    return nodes, i


class Chart:
    """The chart at ``path`` with its ``values.yaml`` (``overrides`` merged on top)."""

    def __init__(self, path: Path, overrides: dict[str, Any] | None = None) -> None:
        self.path = path
        self.values = yaml.safe_load((path / "values.yaml").read_text(encoding="utf-8"))
        for key, value in (overrides or {}).items():
            target = self.values
            *parents, last = key.split(".")
            for parent in parents:
                target = target[parent]
            target[last] = value
        self.defines: dict[str, list[Any]] = {}
        for helper in sorted((path / "templates").glob("_*.tpl")):
            self._render(_parse(_tokens(helper.read_text(encoding="utf-8")))[0], {})

    def documents(self) -> list[dict[str, Any]]:
        """Every object the templates render, parsed."""
        out = []
        for template in sorted((self.path / "templates").glob("*.yaml")):
            text = self._render(_parse(_tokens(template.read_text(encoding="utf-8")))[0], {})
            out += [d for d in yaml.safe_load_all(text) if d]
        return out

    def _render(self, nodes: list[Any], scope: dict[str, Any]) -> str:
        out = []
        for node in nodes:
            if isinstance(node, str):
                out.append(node)
            elif node[0] == "action":
                out.append(str(self._pipeline(node[1], scope)))
            elif node[0] == "define":
                self.defines[json.loads(node[1])] = node[2]
            elif node[0] == "if":
                if self._pipeline(node[1], scope):
                    out.append(self._render(node[2], scope))
            elif node[0] == "range":
                match = re.fullmatch(r"\$(\w+), \$(\w+) := (.+)", node[1])
                assert match, f"range form not known: {node[1]}"
                for key, value in self._pipeline(match.group(3), scope).items():
                    out.append(
                        self._render(node[2], {**scope, match.group(1): key, match.group(2): value})
                    )
        return "".join(out)

    def _pipeline(self, text: str, scope: dict[str, Any]) -> Any:
        first, *filters = [part.strip() for part in text.split("|")]
        value = self._term(first, scope)
        for item in filters:
            name, *args = item.split()
            if name == "quote":
                value = json.dumps(str(value))
            elif name == "nindent":
                value = "\n" + "\n".join(
                    " " * int(args[0]) + line if line else line for line in str(value).splitlines()
                )
            else:
                raise AssertionError(f"filter not known: {item}")
        return value

    def _term(self, text: str, scope: dict[str, Any]) -> Any:
        if text.startswith(".Values."):
            value: Any = self.values
            for part in text.removeprefix(".Values.").split("."):
                assert isinstance(value, dict) and part in value, f"no value {text}"
                value = value[part]
            return value
        if text.startswith("$"):
            return scope[text[1:]]
        if text.startswith("toYaml "):
            return yaml.safe_dump(
                self._term(text.removeprefix("toYaml "), scope),
                sort_keys=False,
                default_flow_style=False,
            ).rstrip()
        match = re.fullmatch(r'include "([\w.]+)" \.', text)
        if match:
            return self._render(self.defines[match.group(1)], scope).strip("\n")
        raise AssertionError(f"template action not known: {text}")
