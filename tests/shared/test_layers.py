"""shared/ in layers: the import contracts hold (pyproject's [tool.importlinter], also run by
``make lint``), no import cycle, even through an import inside a function, and nothing of
shared/ or of what names it is left for scripts/relayer.py to move or rewrite."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from types import ModuleType

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parent.parent.parent
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def script(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def lint_imports(cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_layer_and_dev_tooling_contracts_hold() -> None:
    run = lint_imports(ROOT)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "2 kept, 0 broken" in run.stdout


def test_shared_has_no_import_cycle() -> None:
    assert script("code_shape").cycles("shared") == []


def test_a_cycle_through_an_import_inside_a_function_is_found(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "low.py").write_text("def later() -> None:\n    from pkg import high\n")
    (package / "high.py").write_text("from pkg import low\n")
    code_shape = script("code_shape")
    monkeypatch.setattr(code_shape, "ROOT", tmp_path)
    assert code_shape.cycles("pkg") == [["pkg.high", "pkg.low"]]


def test_a_layer_importing_upwards_inside_a_function_breaks_the_contract(tmp_path: Path) -> None:
    """What the layers contract sees: the import is in a function, run only when it is called."""
    package = tmp_path / "pkg"
    for layer in ("high", "low"):
        (package / layer).mkdir(parents=True)
        (package / layer / "__init__.py").write_text("")
    (package / "__init__.py").write_text("")
    (package / "high" / "top.py").write_text("from pkg.low import base\n")
    (package / "low" / "base.py").write_text("def later() -> None:\n    from pkg.high import top\n")
    config = """
        [tool.importlinter]
        root_packages = ["pkg"]

        [[tool.importlinter.contracts]]
        name = "layers"
        type = "layers"
        containers = ["pkg"]
        layers = ["high", "low"]
    """
    (tmp_path / "pyproject.toml").write_text(textwrap.dedent(config))
    run = lint_imports(tmp_path)
    assert run.returncode != 0
    assert "pkg.low.base -> pkg.high.top" in run.stdout
    (package / "low" / "base.py").write_text("def later() -> None:\n    pass\n")
    assert lint_imports(tmp_path).returncode == 0


def test_nothing_is_left_for_the_relayer(caplog: pytest.LogCaptureFixture) -> None:
    """Every module in its layer, every test where its module is, no reference to an old name
    (the script exits naming a module of shared/ that is in no layer)."""
    caplog.set_level("INFO", logger="relayer")
    assert script("relayer").main(["--dry-run"]) == 0
    assert [r.getMessage() for r in caplog.records] == []


def test_the_relayer_stops_at_a_module_it_does_not_place(tmp_path: Path) -> None:
    tree = tmp_path / "repo"
    (tree / "scripts").mkdir(parents=True)
    shutil.copy(ROOT / "scripts" / "relayer.py", tree / "scripts")
    for folder in ("shared", "tests/shared"):
        (tree / folder).mkdir(parents=True)
        (tree / folder / "__init__.py").write_text("")
    (tree / "shared" / "jobspec.py").write_text("")
    (tree / "shared" / "events.py").write_text("")
    subprocess.run(["git", "init", "-q"], cwd=tree, check=True)
    subprocess.run(["git", "add", "-A"], cwd=tree, check=True)
    run = subprocess.run(
        [sys.executable, "scripts/relayer.py"],
        cwd=tree,
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode != 0
    assert "shared/jobspec.py" in run.stderr and "nothing was moved" in run.stderr
    assert (tree / "shared" / "events.py").exists()
