"""No import circle: each module imports on its own, and no two modules import each other."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "advlit"


def module_imports() -> dict[str, set[str]]:
    """Advlit module -> the advlit modules it imports at module level (imports inside functions excluded)."""
    found = {}
    for path in PACKAGE.rglob("*.py"):
        name = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts).removesuffix(".__init__")
        deps = set()
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("advlit"):
                deps.add(node.module)
            elif isinstance(node, ast.Import):
                deps |= {alias.name for alias in node.names if alias.name.startswith("advlit")}
        found[name] = deps
    return found


# The architecture: a package imports only packages of lower layers (and itself), anywhere in its code,
# inside functions too. So data never imports study, study never imports reproduction, and so on.
LAYERS = {"runtime": 0, "models": 1, "attacks": 1, "data": 1, "study": 2, "reproduction": 3, "bench": 3, "cli": 4,
          "__main__": 5}  # fmt: skip


def all_imports(path: Path) -> set[str]:
    """The advlit modules a file imports anywhere (module level and inside functions)."""
    deps = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("advlit"):
            deps |= {node.module} if node.module != "advlit" else {f"advlit.{a.name}" for a in node.names}
        elif isinstance(node, ast.Import):
            deps |= {alias.name for alias in node.names if alias.name.startswith("advlit")}
    return deps


def test_the_top_of_the_package_holds_the_cli_and_the_packages():
    top = {p.name for p in PACKAGE.iterdir() if not p.name.startswith((".", "__pycache__"))}
    packages = {n for n in LAYERS if n not in ("cli", "__main__")}
    assert top == {"__init__.py", "__main__.py", "cli.py", "paper", *packages}


def test_no_package_imports_a_higher_layer():
    for path in PACKAGE.rglob("*.py"):
        package = path.relative_to(PACKAGE).parts[0].removesuffix(".py")
        if package == "__init__":
            continue
        for dep in all_imports(path):
            parts = dep.split(".")
            target = parts[1] if len(parts) > 1 else None
            if target in LAYERS and target != package:
                assert LAYERS[target] < LAYERS[package], f"{path.relative_to(PACKAGE)} imports {dep}: a back-arrow"


def test_no_module_level_import_circle():
    graph = module_imports()
    assert "advlit.study.surrogate" in graph and "advlit.study.datamodule" not in graph["advlit.study.surrogate"]
    for start in graph:
        stack, seen = [start], set()
        while stack:
            for dep in graph.get(stack.pop(), ()):
                assert dep != start, f"{start} imports itself through {dep}"
                if dep not in seen:
                    seen.add(dep)
                    stack.append(dep)


@pytest.mark.parametrize(
    "module",
    [
        "advlit.study.surrogate",
        "advlit.study.transfer",
        "advlit.study.datamodule",
        "advlit.bench.attacks",
        "advlit.reproduction.report",
    ],
)
def test_a_module_imports_first_in_a_fresh_interpreter(module):
    result = subprocess.run([sys.executable, "-c", f"import {module}"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
