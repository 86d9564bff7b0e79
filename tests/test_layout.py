"""The package's layout rules: no import cycles (function-level imports included), no stage
command importing another, and no module far over 450 lines."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "cotprobe"
STAGES = {f"cotprobe.{s}" for s in ("generate", "truncate", "tag", "ablate", "report", "ingest", "latent",
                                    "early_exit", "metrics.__main__")}


def modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        name = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        out[name.removesuffix(".__init__")] = path
    return out


def import_graph() -> dict[str, set[str]]:
    """module -> the cotprobe modules it imports anywhere in its text."""
    mods = modules()
    graph: dict[str, set[str]] = {name: set() for name in mods}
    for name, path in mods.items():
        package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                parts = package.split(".")[: len(package.split(".")) - node.level + 1] if node.level else []
                target = ".".join(parts + ([node.module] if node.module else []))
                candidates = [target] + [f"{target}.{alias.name}" for alias in node.names]
            elif isinstance(node, ast.Import):
                candidates = [alias.name for alias in node.names]
            else:
                continue
            graph[name] |= {c for c in candidates if c in mods and c != name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    return found


def test_the_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_cycles():
    assert cycles(import_graph()) == []


def test_no_stage_imports_another():
    graph = import_graph()
    assert STAGES <= set(graph)
    assert {stage: graph[stage] & STAGES for stage in STAGES if graph[stage] & STAGES} == {}


def test_no_module_far_over_450_lines():
    sizes = {name: len(path.read_text(encoding="utf-8").splitlines()) for name, path in modules().items()}
    assert {name: n for name, n in sizes.items() if n > 460} == {}


MAX_PARAMETERS = 7  # beyond this, options travel as one object (Prober, Sweep, Ablation, ...)


def count_parameters(node: ast.FunctionDef) -> int:
    """The parameters a function takes, of every kind, self and cls not counted."""
    a = node.args
    params = [*a.posonlyargs, *a.args, *a.kwonlyargs] + [p for p in (a.vararg, a.kwarg) if p]
    return len([p for p in params if p.arg not in ("self", "cls")])


def parameter_counts() -> dict[str, int]:
    """module:function:line -> its parameters (constructors left out)."""
    return {f"{name}:{node.name}:{node.lineno}": count_parameters(node)
            for name, path in modules().items() for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name != "__init__"}


def test_the_parameter_counter_counts_every_kind_of_parameter():
    tree = ast.parse("def f(a, /, b, *c, d, **e): ...\nclass K:\n    def m(self, x): ...")
    assert [count_parameters(n) for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)] == [5, 1]


def test_no_function_takes_more_than_seven_parameters():
    assert {f: n for f, n in parameter_counts().items() if n > MAX_PARAMETERS} == {}


def sniffing_calls() -> list[str]:
    """hasattr/getattr calls whose object is a backend, its rows or its session (by name): what a
    backend can do is declared in `backends.protocols` and read by `capabilities_of`, never sniffed."""
    found = []
    for name, path in modules().items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                    and node.func.id in ("hasattr", "getattr") and node.args):
                target = ast.unparse(node.args[0])
                if any(word in target for word in ("backend", "rows", "session")):
                    found.append(f"{name}:{node.lineno}: {ast.unparse(node)}")
    return found


def test_no_backend_capability_is_sniffed():
    assert sniffing_calls() == []
