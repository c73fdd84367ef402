"""{{name}} and {{dotted.path}} resolution over the merged raw config, once, before validation.

`{{name}}` reads `[variables]`; a dotted path reads from the root (list items by index:
`{{services.ollama.ports.0.container}}`). A string that is exactly one template takes the
referenced value as is (a number stays a number); elsewhere values are spliced in as text.

`{{{{` is a literal `{{` (doubled, as in Python's format strings), so an inline Jinja chat
template passes through: `"{{{{ bos_token }}"` → `"{{ bos_token }}"`.
"""

from __future__ import annotations

import re
from typing import Any

from airpods.errors import ConfigError

TEMPLATE_RE = re.compile(r"\{\{\s*([A-Za-z0-9_][A-Za-z0-9_.\-]*)\s*\}\}")
LITERAL_BRACES = "{{{{"  # written for a literal "{{"
# The longest string templates may produce (characters): far beyond any value a service takes
# (an inline chat template is a few KB), short of what 27 doubling variables make (3.2 GB).
MAX_EXPANDED = 1 << 16

Path = tuple[str | int, ...]


def dotted(path: Path) -> str:
    return ".".join(str(part) for part in path)


class _Resolver:
    def __init__(self, root: dict[str, Any]) -> None:
        self.root = root
        self.done: dict[Path, Any] = {}
        self.active: list[Path] = []

    def value(self, value: Any, path: Path) -> Any:
        if isinstance(value, dict):
            return {k: self.value(v, path + (k,)) for k, v in value.items()}
        if isinstance(value, list):
            return [self.value(v, path + (i,)) for i, v in enumerate(value)]
        if isinstance(value, str) and "{{" in value:
            return self.string(value, path)
        return value

    def string(self, text: str, path: Path) -> Any:
        if path in self.active:
            return self.substitute(text, path)
        self.active.append(path)
        try:
            return self.substitute(text, path)
        finally:
            self.active.pop()

    def substitute(self, text: str, path: Path) -> Any:
        if LITERAL_BRACES in text:  # each piece between escapes is resolved on its own
            return "{{".join(str(self.substitute(piece, path)) for piece in text.split(LITERAL_BRACES))
        whole = TEMPLATE_RE.fullmatch(text.strip())
        if whole:
            return self.lookup(whole.group(1), path)

        def splice(match: re.Match[str]) -> str:
            found = self.lookup(match.group(1), path)
            if isinstance(found, (dict, list)):
                raise self.error(path, f"'{{{{{match.group(1)}}}}}' is a table or array and cannot be part of a string")
            return str(found).lower() if isinstance(found, bool) else str(found)

        spliced = TEMPLATE_RE.sub(splice, text)
        if len(spliced) > MAX_EXPANDED:
            raise self.error(path, f"its templates expand to {len(spliced)} characters, more than {MAX_EXPANDED}")
        return spliced

    def lookup(self, name: str, used_at: Path) -> Any:
        target = self.target_path(name, used_at)
        if target in self.done:
            return self.done[target]
        if target in self.active:
            cycle = self.active[self.active.index(target) :] + [target]
            raise self.error(used_at, "template cycle: " + " -> ".join(dotted(p) for p in cycle))
        self.active.append(target)
        try:
            raw = self.walk(target, name, used_at)
            resolved = self.value(raw, target)
        finally:
            self.active.pop()
        self.done[target] = resolved
        return resolved

    def target_path(self, name: str, used_at: Path) -> Path:
        if "." not in name:
            return ("variables", name)
        return tuple(int(p) if p.isdigit() else p for p in name.split("."))

    def walk(self, target: Path, name: str, used_at: Path) -> Any:
        node: Any = self.root
        for part in target:
            if isinstance(node, dict) and isinstance(part, str) and part in node:
                node = node[part]
            elif isinstance(node, list) and isinstance(part, int) and part < len(node):
                node = node[part]
            else:
                if target[0] == "variables" and len(target) == 2:
                    known = ", ".join(sorted(self.root.get("variables", {}))) or "none defined"
                    hint = f"[variables] has: {known}"
                else:
                    hint = "dotted paths start at the root of the file, e.g. services.ollama.ports.0.container"
                raise self.error(used_at, f"unknown template name '{{{{{name}}}}}' ({hint})")
        return node

    def error(self, path: Path, message: str) -> ConfigError:
        return ConfigError(message, key=dotted(path))


def resolve_templates(data: dict[str, Any]) -> dict[str, Any]:
    """Return a copy of `data` with every template resolved; ConfigError on unknown names/cycles."""
    return _Resolver(data).value(data, ())
