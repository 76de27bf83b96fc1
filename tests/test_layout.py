"""The product and its test doubles stay apart: the stand-ins (`sandbox`) and the playground are
top-level packages of the source tree, which the bot never imports (only `python -m bot`'s
`_run_playground`, when nothing is configured) and which the wheel does not ship."""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PRODUCT = ("bot", "web_callback")
TEST_ONLY = frozenset({"sandbox", "playground"})
# The one place allowed to import the playground: inside this function of this file.
LAZY_ENTRY = (Path("bot") / "__main__.py", "_run_playground")


def _imports(tree: ast.AST) -> list[tuple[str, int, str | None]]:
    """(top-level module, line, enclosing function or None) for every absolute import."""
    found: list[tuple[str, int, str | None]] = []

    def visit(node: ast.AST, function: str | None) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                visit(child, function or child.name)
                continue
            if isinstance(child, ast.Import):
                found.extend(
                    (alias.name.split(".")[0], child.lineno, function) for alias in child.names
                )
            elif isinstance(child, ast.ImportFrom) and child.level == 0 and child.module:
                found.append((child.module.split(".")[0], child.lineno, function))
            visit(child, function)

    visit(tree, None)
    return found


def test_no_product_module_imports_the_stand_ins_or_the_playground() -> None:
    offending = []
    lazy = []
    for package in PRODUCT:
        for path in sorted((ROOT / package).rglob("*.py")):
            relative = path.relative_to(ROOT)
            tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(relative))
            for module, line, function in _imports(tree):
                if module not in TEST_ONLY:
                    continue
                if (relative, function) == LAZY_ENTRY and module == "playground":
                    lazy.append(line)
                else:
                    offending.append(f"{relative}:{line} imports {module} (in {function})")
    assert offending == []
    assert lazy, "the entry point no longer imports the playground lazily: update LAZY_ENTRY"


def test_importing_the_product_loads_neither() -> None:
    """What actually runs: importing every product module (the entry point included) leaves
    `sandbox` and `playground` out of sys.modules."""
    modules = sorted(
        ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        for package in PRODUCT
        for path in (ROOT / package).rglob("*.py")
        if "migrations" not in path.parts  # Alembic runs env.py, nobody imports it
    )
    script = (
        "import importlib, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        f"print(sorted(m for m in sys.modules if m.split('.')[0] in {sorted(TEST_ONLY)!r}))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_the_wheel_ships_the_product_only(tmp_path: Path) -> None:
    """setuptools' own build_py (what fills a wheel) run on a copy of the tree with this
    pyproject.toml: `bot` and `web_callback` with their data files, no stand-ins, no playground."""
    source = tmp_path / "src"
    source.mkdir()
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copy(ROOT / "pyproject.toml", source)
    shutil.copy(ROOT / "README.md", source)
    for package in (*PRODUCT, *sorted(TEST_ONLY)):
        shutil.copytree(ROOT / package, source / package, ignore=ignore)
    build = tmp_path / "build"
    result = subprocess.run(
        [sys.executable, "-c", "from setuptools import setup; setup()", "-q", "build_py"]
        + ["--build-lib", str(build)],
        cwd=source,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    shipped = sorted(str(path.relative_to(build)) for path in build.rglob("*") if path.is_file())

    assert sorted({name.split("/")[0] for name in shipped}) == list(PRODUCT)
    assert "bot/__main__.py" in shipped
    assert "bot/locales/en.toml" in shipped and "bot/locales/de.toml" in shipped
    assert any(name.startswith("bot/migrations/versions/") for name in shipped)
    assert "web_callback/app.py" in shipped


def test_installed_entry_point_without_the_playground_says_so_in_one_line(tmp_path: Path) -> None:
    """`connect-bot` from a wheel, with nothing configured: no playground to start, one line
    saying what to set, no traceback. (Simulated by running the entry point where only the
    product packages are importable.)"""
    ignore = shutil.ignore_patterns("__pycache__")
    for package in PRODUCT:
        shutil.copytree(ROOT / package, tmp_path / package, ignore=ignore)
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("TELEGRAM_", "FACEBOOK_", "PLAYGROUND_")) and key != "PYTHONPATH"
    }
    result = subprocess.run(
        [sys.executable, "-c", "from bot.__main__ import main; main()"],
        cwd=tmp_path,
        env={**env, "PYTHONPATH": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("connect-bot: TELEGRAM_BOT_TOKEN, FACEBOOK_APP_ID and FACEBOOK_APP")
    assert "make run" in lines[0]
