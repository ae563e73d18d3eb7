"""The package's modules import each other without a cycle (function-level imports included),
so that each layer can be read, tested and reused without the layers above it."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "groktransfer"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def is_module(name: str) -> bool:
    path = PACKAGE.parent / name.replace(".", "/")
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def import_graph() -> dict[str, set[str]]:
    """Each module of the package -> the package modules it imports anywhere in its body."""
    graph = {}
    for path in PACKAGE.rglob("*.py"):
        name = module_name(path)
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        deps = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - node.level + 1]
                    source = ".".join(base + ([node.module] if node.module else []))
                else:
                    source = node.module or ""
                if not source.startswith("groktransfer"):
                    continue
                submodules = [f"{source}.{alias.name}" for alias in node.names if is_module(f"{source}.{alias.name}")]
                # `from . import sub` needs the submodule, not the package's __init__
                deps.update(submodules if len(submodules) == len(node.names) else [source, *submodules])
            elif isinstance(node, ast.Import):
                deps.update(alias.name for alias in node.names if alias.name.startswith("groktransfer"))
        graph[name] = deps - {name}
    return graph


def find_cycle(graph: dict[str, set[str]]):
    """A list of modules forming a cycle, or None (depth-first search with colours)."""
    colour, stack = {}, []

    def visit(node):
        colour[node] = "grey"
        stack.append(node)
        for dep in sorted(graph.get(node, ())):
            if colour.get(dep) == "grey":
                return stack[stack.index(dep):] + [dep]
            if dep not in colour and (cycle := visit(dep)):
                return cycle
        colour[node] = "black"
        stack.pop()
        return None

    for node in sorted(graph):
        if node not in colour and (cycle := visit(node)):
            return cycle
    return None


def test_the_checker_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None


def test_the_graph_sees_function_level_imports():
    graph = import_graph()
    assert "groktransfer.config" in graph["groktransfer.tasks"]
    assert "groktransfer.transformer" in graph["groktransfer.models"]


def test_no_import_cycle():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_every_public_name_resolves_lazily_and_no_submodule_shadows_one():
    """`import groktransfer` loads names on first use; a submodule named like a public name
    would replace it on the package once imported (as `attach` did), so none may be."""
    import importlib
    import pkgutil
    import types

    import groktransfer

    submodules = {m.name for m in pkgutil.iter_modules(groktransfer.__path__)}
    assert not set(groktransfer.__all__) & submodules
    for name in sorted(submodules - {"__main__"}):
        importlib.import_module(f"groktransfer.{name}")
    for name in groktransfer.__all__:
        assert not isinstance(getattr(groktransfer, name), types.ModuleType), name
