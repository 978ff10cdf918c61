"""The import graph of labshare/, read from the source (every import statement,
at module level or inside a function): no cycle apart from Flask's blueprint
idiom, the booking engine imports none of its policies, and the layers hold
(models import nothing above them; domain packages no views, API or jobs)."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

#: Packages of domain code: they serve the views, the API and the jobs, never import them.
DOMAIN = (
    "labshare.booking",
    "labshare.catalogue",
    "labshare.accounts",
    "labshare.campaign",
    "labshare.messaging",
    "labshare.ops",
    "labshare.orders",
)
UPPER = ("labshare.web", "labshare.api", "labshare.jobs")
#: What models may import besides labshare.models: the layers below them.
BELOW_MODELS = ("labshare.models", "labshare.timeutil", "labshare.extensions", "labshare.database")
POLICIES = "labshare.booking.policies"


@dataclass(frozen=True)
class Import:
    source: str
    target: str
    line: int
    type_checking: bool  # under ``if TYPE_CHECKING:``: no import at run time


def modules(root: Path, package: str = "labshare") -> dict[str, Path]:
    """{dotted name: file} of every module of ``package`` under ``root``."""
    out: dict[str, Path] = {}
    for path in sorted((root / package.replace(".", "/")).rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    ids: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.body:
                ids.update(id(n) for n in ast.walk(child))
    return ids


def imports_of(name: str, path: Path, known: dict[str, Path]) -> Iterator[Import]:
    """Every import of a module of ``known`` by ``name``, wherever it is written.
    ``from p import x`` is an import of ``p.x`` when that is a module, else of ``p``."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    hidden = _type_checking_nodes(tree)
    is_package = path.name == "__init__.py"
    for node in ast.walk(tree):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names if a.name in known]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".") if is_package else name.split(".")[:-1]
                base = base[: len(base) - node.level + 1]
                module = ".".join([*base, *([node.module] if node.module else [])])
            else:
                module = node.module or ""
            for alias in node.names:
                if f"{module}.{alias.name}" in known:
                    targets.append(f"{module}.{alias.name}")
                elif module in known:
                    targets.append(module)
        for target in targets:
            yield Import(name, target, node.lineno, id(node) in hidden)


def all_imports(root: Path = ROOT, package: str = "labshare") -> list[Import]:
    known = modules(root, package)
    return [i for name, path in known.items() for i in imports_of(name, path, known)]


def blueprint_packages(root: Path = ROOT, package: str = "labshare") -> set[str]:
    """Packages whose ``__init__`` defines ``bp`` at module level."""
    out = set()
    for name, path in modules(root, package).items():
        if path.name != "__init__.py":
            continue
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            if isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == "bp" for t in node.targets
            ):
                out.add(name)
    return out


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), and
    modules importing themselves."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
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
            if len(component) > 1 or v in edges.get(v, ()):
                found.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def runtime_graph(root: Path = ROOT, package: str = "labshare") -> dict[str, set[str]]:
    """Imports run at some point (not those for type checkers only), without the
    blueprint idiom's: a module of a package importing that package's ``bp``."""
    blueprints = blueprint_packages(root, package)
    edges: dict[str, set[str]] = {}
    for imp in all_imports(root, package):
        if imp.type_checking:
            continue
        if imp.target in blueprints and imp.source.startswith(imp.target + "."):
            continue
        edges.setdefault(imp.source, set()).add(imp.target)
    return edges


def _within(name: str, prefixes: tuple[str, ...] | str) -> bool:
    if isinstance(prefixes, str):
        prefixes = (prefixes,)
    return any(name == p or name.startswith(p + ".") for p in prefixes)


# -- the rules ----------------------------------------------------------------------------


def test_no_import_cycle_in_labshare() -> None:
    assert cycles(runtime_graph()) == []


def test_the_engine_imports_none_of_its_policies() -> None:
    """Not at module level, not inside a function, not even for type checking."""
    wrong = [
        f"{i.source}:{i.line} imports {i.target}"
        for i in all_imports()
        if _within(i.source, "labshare.booking")
        and not _within(i.source, POLICIES)
        and _within(i.target, POLICIES)
    ]
    assert wrong == []


def test_models_import_nothing_above_them() -> None:
    wrong = [
        f"{i.source}:{i.line} imports {i.target}"
        for i in all_imports()
        if _within(i.source, "labshare.models") and not _within(i.target, BELOW_MODELS)
    ]
    assert wrong == []


def test_domain_packages_import_no_views_api_or_jobs() -> None:
    wrong = [
        f"{i.source}:{i.line} imports {i.target}"
        for i in all_imports()
        if _within(i.source, DOMAIN) and _within(i.target, UPPER)
    ]
    assert wrong == []


# -- the checker itself -------------------------------------------------------------------


def _package(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


def test_a_cycle_through_a_function_level_import_is_found(tmp_path: Path) -> None:
    _package(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/a.py": "from pkg import b\n",
            "pkg/b.py": "def f():\n    from pkg.a import g\n",
            "pkg/c.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import pkg.d\n",
            "pkg/d.py": "from . import c\n",
        },
    )
    assert cycles(runtime_graph(tmp_path, "pkg")) == [["pkg.a", "pkg.b"]]


def test_the_blueprint_idiom_is_no_cycle_but_a_views_loop_is(tmp_path: Path) -> None:
    _package(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/web/__init__.py": "bp = object()\nfrom pkg.web import views, more\n",
            "pkg/web/views.py": "from pkg.web import bp\n",
            "pkg/web/more.py": "from pkg.web import bp\n",
        },
    )
    assert cycles(runtime_graph(tmp_path, "pkg")) == []
    (tmp_path / "pkg/web/views.py").write_text(
        "from pkg.web import bp\ndef f():\n    from pkg.web.more import x\n", encoding="utf-8"
    )
    (tmp_path / "pkg/web/more.py").write_text("from pkg.web.views import y\n", encoding="utf-8")
    assert cycles(runtime_graph(tmp_path, "pkg")) == [["pkg.web.more", "pkg.web.views"]]
