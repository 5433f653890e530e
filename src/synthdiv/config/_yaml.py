"""The YAML reader of config files and ``--set`` values: bounded, and strict about duplicate keys.

PyYAML's ``safe_load`` lets the last of two equal keys win without a word (``seed: 1`` ... ``seed: 2``), and it
builds whatever an alias graph describes: nine levels of ``[*a, *a, ...]`` inside a free-form mapping such as
``train.model_kwargs`` pass validation and then expand to 10^9 values when the config is dumped or fingerprinted.
:func:`parse_yaml` refuses both, and deep nesting, before anything is constructed; the file size is bounded by the
caller before the text is read (:data:`MAX_CONFIG_BYTES`).
"""

from __future__ import annotations

from typing import Any

import yaml
from yaml.events import AliasEvent
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

__all__ = ["MAX_CONFIG_BYTES", "MAX_CONFIG_VALUES", "MAX_CONFIG_DEPTH", "YAMLRefused", "parse_yaml"]

MAX_CONFIG_BYTES = 1 << 20  # a config is a few KB; class lists and prompts live in their own files
MAX_CONFIG_VALUES = 100_000  # keys, values and list items, counted with every alias expanded
MAX_CONFIG_DEPTH = 64  # nested mappings and lists (PyYAML's composer recurses once per level)

_MERGE = "tag:yaml.org,2002:merge"


class YAMLRefused(Exception):
    """A document this reader refuses: ``problem``, at ``line`` (1-based) when one line is to blame."""

    def __init__(self, problem: str, line: int | None = None) -> None:
        super().__init__(problem)
        self.problem = problem
        self.line = line


class _BoundedLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys, recursive aliases, deep nesting and alias expansion past the bound."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0
        self._open: set[str] = set()  # anchors of the nodes being composed (an alias to one is a cycle)

    def compose_node(self, parent: Node | None, index: Any) -> Node:
        event = self.peek_event()
        if self.check_event(AliasEvent):
            if event.anchor in self._open:
                raise YAMLRefused(f"an alias refers to the value that holds it (*{event.anchor})",
                                  event.start_mark.line + 1)
            return super().compose_node(parent, index)
        if self._depth >= MAX_CONFIG_DEPTH:
            raise YAMLRefused(f"nested more than {MAX_CONFIG_DEPTH} levels deep", event.start_mark.line + 1)
        anchor = event.anchor
        self._depth += 1
        if anchor is not None:
            self._open.add(anchor)
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1
            self._open.discard(anchor)

    def construct_document(self, node: Node) -> Any:
        _check_expansion(node)
        return super().construct_document(node)

    def construct_mapping(self, node: Node, deep: bool = False) -> dict[Any, Any]:
        if isinstance(node, MappingNode):
            seen: dict[Any, int] = {}
            for key_node, _ in node.value:  # the keys as written: keys merged in by `<<:` may be overridden
                if key_node.tag == _MERGE or not isinstance(key_node, ScalarNode):
                    continue
                key = self.construct_object(key_node)
                line = key_node.start_mark.line + 1
                if key in seen:
                    raise YAMLRefused(f"duplicate key {key!r} (first on line {seen[key]}); give each key once", line)
                seen[key] = line
        return super().construct_mapping(node, deep=deep)


def _children(node: Node) -> list[Node]:
    if isinstance(node, MappingNode):
        return [part for pair in node.value for part in pair]
    if isinstance(node, SequenceNode):
        return list(node.value)
    return []


def _check_expansion(root: Node) -> None:
    """Refuse a node graph that expands to more than :data:`MAX_CONFIG_VALUES` values (each node counted once per
    path to it, as construction and every later copy would), without expanding it."""
    sizes: dict[int, int] = {}
    stack: list[tuple[Node, bool]] = [(root, False)]
    while stack:
        node, finished = stack.pop()
        if finished:
            sizes[id(node)] = min(MAX_CONFIG_VALUES + 1, 1 + sum(sizes[id(c)] for c in _children(node)))
        elif id(node) not in sizes:
            stack.append((node, True))
            stack.extend((c, False) for c in _children(node) if id(c) not in sizes)
    if sizes[id(root)] > MAX_CONFIG_VALUES:
        what = "YAML aliases expand to" if len(sizes) <= MAX_CONFIG_VALUES else "the document holds"
        raise YAMLRefused(f"{what} more than {MAX_CONFIG_VALUES:,} values; a config holds at most "
                          f"{MAX_CONFIG_VALUES:,} (keys, values and list items, aliases expanded)")


def parse_yaml(text: str) -> Any:
    """The value of the YAML document ``text`` (see the module docstring for what is refused).

    Raises:
        YAMLRefused: A duplicate key, a recursive alias, deep nesting or too many values.
        yaml.YAMLError: The text is not YAML.
    """
    loader = _BoundedLoader(text)
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()
