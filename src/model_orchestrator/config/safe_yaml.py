"""Reading YAML as plain data with a bound on what aliases may expand to (no "billion laughs").

PyYAML's safe loader never runs code, but an alias (``*name``) repeats a whole subtree, so a few hundred
bytes of nested aliases stand for billions of nodes: anything that walks the result (validation, an
error message quoting a value) then runs out of memory. ``load_yaml`` counts the nodes the document
stands for once aliases and merge keys (``<<``) are expanded, before any Python object is built, and
refuses more than ``MAX_EXPANDED_NODES``, or an alias that contains itself. The bound is far above any
real config (a model entry is about 30 nodes) and checking it is linear in the file's size.
Owns that bound only; the loader turns the errors into messages.
"""

from __future__ import annotations

import yaml

MAX_EXPANDED_NODES = 100_000


class YamlExpansionError(yaml.YAMLError):
    """The document expands beyond ``MAX_EXPANDED_NODES`` or holds a recursive alias."""


def load_yaml(text: str) -> object:
    """The data in ``text`` (one YAML document); raises ``yaml.YAMLError`` for bad or explosive input."""
    return yaml.load(text, Loader=_BoundedSafeLoader)  # a SafeLoader subclass: data only, never code


class _BoundedSafeLoader(yaml.SafeLoader):
    """The safe loader, refusing documents that expand beyond the bound once composed."""

    def compose_document(self) -> yaml.Node | None:
        node: yaml.Node | None = super().compose_document()
        if node is not None:
            _ExpandedSize().of(node)
        return node


class _ExpandedSize:
    """Counts a node graph's size as a tree; shared subtrees (aliases) are counted once per use."""

    def __init__(self) -> None:
        self._sizes: dict[int, int] = {}
        self._open: set[int] = set()

    def of(self, node: yaml.Node) -> int:
        key = id(node)
        if key in self._sizes:
            return self._sizes[key]
        if key in self._open:
            raise YamlExpansionError(f"an alias refers to itself (line {node.start_mark.line + 1})")
        self._open.add(key)
        size = 1
        if isinstance(node, yaml.SequenceNode):
            size += sum(self.of(child) for child in node.value)
        elif isinstance(node, yaml.MappingNode):
            size += sum(self.of(k) + self.of(v) for k, v in node.value)
        self._open.discard(key)
        if size > MAX_EXPANDED_NODES:
            raise YamlExpansionError(
                f"aliases (*name) expand to more than {MAX_EXPANDED_NODES:,} values "
                f"(near line {node.start_mark.line + 1}); a config that big is an attack, not a config"
            )
        self._sizes[key] = size
        return size
