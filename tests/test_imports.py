"""The layers of pbxis/ import downwards only (``test_import_cycles.py`` has the cycles' own test).

The graph is read from the source: module-level imports, ``TYPE_CHECKING`` blocks
included (a cycle for the type checker is still two modules that cannot be understood
apart), imports inside functions left out. ``pbxis/__init__.py`` is the lazy facade of
the library (``pbxis.CallCenter``...): it imports the layers above it only on first use
of a name, so the layer check leaves it out.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "pbxis"

#: Layer order (docs/architecture.rst): a module may import its own layer and those
#: before it, never those after.
LAYERS = (
    (
        "pbxis.names",
        "pbxis.errors",
        "pbxis.events",
        "pbxis.config",
        "pbxis.tail",
        # the [[webhooks]] section and the signature scheme: pure, read by pbxis.config
        "pbxis.webhooks.config",
        "pbxis.webhooks.signing",
        # pending deliveries by lane, a pure structure the Redis outbox mirrors
        "pbxis.webhooks.outbox",
    ),
    ("pbxis.ami",),
    ("pbxis.tracker", "pbxis.supervisors"),
    ("pbxis.hub", "pbxis.store"),
    # metrics reads every layer below (AMI link stats, the tracker's event names, the hub)
    ("pbxis.sync", "pbxis.commands", "pbxis.call_control", "pbxis.webhooks", "pbxis.engine", "pbxis.metrics"),
    ("pbxis.web",),
    ("pbxis.simulator",),
    ("pbxis.service", "pbxis.gcpolicy", "pbxis.testing"),
)


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in PACKAGE.rglob("*.py")}


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    """The pbxis modules ``name`` imports when it is first imported."""
    tree = ast.parse(path.read_text("utf-8"))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()

    def visit(body: list[ast.stmt]) -> None:
        for node in body:
            if isinstance(node, ast.If):
                visit(node.body)
                visit(node.orelse)
            elif isinstance(node, ast.Try):
                visit(node.body)
                for handler in node.handlers:
                    visit(handler.body)
            elif isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")
                    anchor = anchor[: len(anchor) - node.level + 1]
                    base = ".".join([*anchor, *([base] if base else [])])
                for alias in node.names:
                    sub = f"{base}.{alias.name}"
                    found.add(sub if sub in known else base)

    visit(tree.body)
    return {m for m in found if m in known and m != name}


def graph() -> dict[str, set[str]]:
    mods = modules()
    known = set(mods)
    return {name: imports_of(name, path, known) for name, path in mods.items()}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0

    def strongconnect(v: str) -> None:
        nonlocal counter
        index[v] = low[v] = counter
        counter += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                strongconnect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            strongconnect(v)
    return found


def layer_of(name: str) -> int | None:
    if name == "pbxis":
        return 0  # ``__version__``
    for i, layer in enumerate(LAYERS):
        if any(name == top or name.startswith(top + ".") for top in layer):
            return i
    return None


def test_the_reader_sees_real_imports() -> None:
    edges = graph()
    assert "pbxis.hub.hub" in edges["pbxis.hub"]
    assert "pbxis.engine.center" in edges["pbxis.engine"]
    assert "pbxis.hub" in edges["pbxis.engine.center"]
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_cycle() -> None:
    assert cycles(graph()) == []


def test_layers_import_downwards_only() -> None:
    upward = []
    for name, targets in graph().items():
        if name == "pbxis":
            continue  # the lazy facade (module docstring)
        mine = layer_of(name)
        assert mine is not None, f"{name} is in no layer of docs/architecture.rst"
        for target in targets:
            theirs = layer_of(target)
            if theirs is not None and theirs > mine:
                upward.append(f"{name} -> {target}")
    assert upward == []
