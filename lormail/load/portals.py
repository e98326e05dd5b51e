"""Portal rules (YAML) → :class:`~lormail.core.inbox.PortalRule` objects (SPEC §8).

The rules lormail ships live in ``lormail/data/portals.yaml``; the user's own
file (config ``imap.portals``) has the same form and its rules come first.
Problems read ``FILE:LINE:COL: PATH: message`` like the roster's, and a
regular expression that does not compile is one of them.
"""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path

from lormail.core.inbox import PortalRule
from lormail.load.fields import LINE, Source
from lormail.load.yamlsrc import Node, display_name, parse, read_text

__all__ = ["load_rules", "parse_rules", "shipped_rules"]

_ROOT = frozenset(("rules",))
_RULE = frozenset(("name", "from", "local_part", "portals", "received"))
SHIPPED = "portals.yaml"


def shipped_rules() -> tuple[PortalRule, ...]:
    text = resources.files("lormail").joinpath("data", SHIPPED).read_text("utf-8")
    return parse_rules(text, f"lormail/data/{SHIPPED}")


def load_rules(path: Path | None) -> tuple[PortalRule, ...]:
    """The user's rules (when ``path`` is given) followed by the shipped ones."""
    own: tuple[PortalRule, ...] = ()
    if path is not None:
        file = display_name(path)
        own = parse_rules(read_text(path, file, "see 'imap.portals' in the config"), file)
    return own + shipped_rules()


def parse_rules(text: str, file: str) -> tuple[PortalRule, ...]:
    src = Source(file)
    root = parse(text, file)
    rules: list[PortalRule] = []
    f = src.fields(root, "", _ROOT, ("rules",)) if root is not None else {}
    for i, item in enumerate(
        src.items(f["rules"], "rules", "[{name: …}]") if f and "rules" in f else []
    ):
        rule = _rule(src, item, f"rules[{i}]")
        if rule is not None:
            rules.append(rule)
    src.raise_problems()
    return tuple(rules)


def _texts(src: Source, f: dict[str, Node], key: str, path: str) -> list[tuple[Node, str]]:
    if key not in f:
        return []
    out = []
    for j, node in enumerate(src.items(f[key], f"{path}.{key}", "['…']")):
        value = src.text(node, f"{path}.{key}[{j}]", LINE)
        if value is not None and value.strip():
            out.append((node, value.strip()))
        elif value is not None:
            src.add(node, f"{path}.{key}[{j}]", "must not be empty")
    return out


def _patterns(src: Source, f: dict[str, Node], key: str, path: str) -> tuple[re.Pattern[str], ...]:
    out = []
    for j, (node, text) in enumerate(_texts(src, f, key, path)):
        try:
            out.append(re.compile(text, re.I))
        except re.error as err:
            src.add(node, f"{path}.{key}[{j}]", f"not a regular expression: {err}")
    return tuple(out)


def _rule(src: Source, node: Node, path: str) -> PortalRule | None:
    f = src.fields(node, path, _RULE, ("name", "received"))
    if f is None:
        return None
    name = src.required_text(f.get("name"), f"{path}.name", LINE)
    received = _patterns(src, f, "received", path)
    senders = tuple(d.lower().lstrip("@") for _, d in _texts(src, f, "from", path))
    if "received" in f and not received and not src.problems:
        src.add(f["received"], f"{path}.received", "needs at least one regular expression")
    if not senders and "local_part" not in f and "from" in f:
        src.add(f["from"], f"{path}.from", "needs at least one domain (or drop it with local_part)")
    if name is None:
        return None
    return PortalRule(
        name=name,
        senders=senders,
        local_parts=_patterns(src, f, "local_part", path),
        portals=tuple(p for _, p in _texts(src, f, "portals", path)),
        received=received,
    )
