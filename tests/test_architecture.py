"""The shape of the package: no import cycles between its modules, thin entry scripts, and no module over
300 lines without the reason stated in its docstring."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

from conftest import ROOT

PACKAGE = ROOT / "src" / "cifarlab"
COMMANDS = ["train", "evaluate", "compare", "predict", "export", "app", "data_figures"]
MAX_LINES = 300
REASON = "one module because"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def top_level_imports(path: Path) -> set[str]:
    """The cifarlab modules ``path`` imports when it is imported (imports inside functions are not counted:
    they run later, and are how a module defers one on purpose)."""
    names = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("cifarlab"):
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(a.name for a in node.names if a.name.startswith("cifarlab"))
    return names


def test_no_import_cycles_between_modules() -> None:
    modules = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph = {name: {m for m in top_level_imports(path) if m in modules and m != name} for name, path in modules.items()}
    done: set[str] = set()

    def visit(name: str, trail: list[str]) -> None:
        if name in trail:
            pytest.fail("import cycle: " + " -> ".join(trail[trail.index(name):] + [name]))
        if name in done:
            return
        for imported in sorted(graph[name]):
            visit(imported, trail + [name])
        done.add(name)

    for name in sorted(graph):
        visit(name, [])


@pytest.mark.parametrize("command", COMMANDS)
def test_a_command_composes_a_config_and_calls_one_function(command: str) -> None:
    path = PACKAGE / "cli" / f"{command}.py"
    functions = [n for n in ast.parse(path.read_text()).body if isinstance(n, (ast.FunctionDef, ast.ClassDef))]
    assert [f.name for f in functions] == ["main"], f"{path.name} defines {[f.name for f in functions]}"
    assert len(path.read_text().splitlines()) <= 30


@pytest.mark.parametrize("command", COMMANDS)
def test_a_checkout_script_runs_its_installed_command(command: str) -> None:
    script = (ROOT / f"{command}.py").read_text()
    assert f"from cifarlab.cli.{command} import main" in script and len(script.splitlines()) <= 8
    scripts = (ROOT / "pyproject.toml").read_text()
    assert f'cifarlab-{command.replace("_", "-")} = "cifarlab.cli.{command}:main"' in scripts


def test_a_module_over_300_lines_says_why_it_is_one_module() -> None:
    long = {p.relative_to(ROOT).as_posix(): n for p in PACKAGE.rglob("*.py")
            if (n := len(p.read_text().splitlines())) > MAX_LINES}
    unexplained = [f"{path} ({n} lines)" for path, n in long.items()
                   if REASON not in " ".join((ast.get_docstring(ast.parse((ROOT / path).read_text())) or "").split())]
    assert not unexplained, f"over {MAX_LINES} lines without '{REASON} ...' in the docstring: {unexplained}"


def code_strings(path: Path) -> set[str]:
    """The string constants of a module's code that could be paths: docstrings and messages (text with
    spaces) left out."""
    tree = ast.parse(path.read_text())
    docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                  if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
                  and node.body and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant)}
    return {node.value for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings
            and " " not in node.value}


def test_the_lightning_module_never_reads_the_data_module() -> None:
    tree = ast.parse((PACKAGE / "module.py").read_text())
    names = {node.attr for node in ast.walk(tree) if isinstance(node, ast.Attribute)}
    assert "datamodule" not in names, "module.py reads trainer.datamodule: give the module what it needs when it is built"


RUN_DIR_FILES = ("config.yaml", "overrides.yaml", "hydra.yaml", ".hydra", "last.ckpt", "held_out.json", "MODEL_CARD.md")


def test_only_run_dir_names_the_files_of_a_run_dir() -> None:
    owner = PACKAGE / "runs" / "rundir.py"
    strangers = {p.relative_to(ROOT).as_posix(): sorted(s for s in code_strings(p) if any(f in s for f in RUN_DIR_FILES))
                 for p in PACKAGE.rglob("*.py") if p != owner}
    assert not {p: s for p, s in strangers.items() if s}, "only cifarlab.runs.rundir.RunDir opens a run dir's files"
    assert all(any(f in s for s in code_strings(owner)) for f in RUN_DIR_FILES)


def test_this_test_finds_a_run_dir_file_named_outside_run_dir(tmp_path: Path) -> None:
    stray = tmp_path / "stray.py"
    stray.write_text('"""Reads config.yaml (a docstring may say so)."""\nPATH = "run/.hydra/overrides.yaml"\n'
                     'MESSAGE = "no config.yaml in the run dir"\n')
    assert code_strings(stray) == {"run/.hydra/overrides.yaml"}


def hand_checked_ranges(path: Path) -> list[str]:
    """The ``__post_init__`` methods of ``path`` that compare a value with a number: a range checked by hand,
    where it should be declared next to the field's type (``Annotated[int, Range(...)]``)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.FunctionDef) and node.name == "__post_init__":
            for compare in (n for n in ast.walk(node) if isinstance(n, ast.Compare)):
                numbers = [c for c in [compare.left, *compare.comparators] if isinstance(c, ast.Constant)
                           and isinstance(c.value, (int, float)) and not isinstance(c.value, bool)]
                if numbers:
                    found.append(f"{path.name}:{compare.lineno}")
    return found


def test_each_range_is_declared_once_next_to_its_type() -> None:
    from cifarlab.config.ranges import declared_ranges
    from cifarlab.config.validation import THIRD_PARTY, _locate

    assert not [f for p in PACKAGE.rglob("*.py") for f in hand_checked_ranges(p)], "declare the range in the annotation"
    sources = " ".join(p.read_text() for p in PACKAGE.rglob("*.py"))
    assert "RANGES" not in sources and "def _positive" not in sources, "a second table of ranges"
    assert not [t for t in THIRD_PARTY if t.startswith("cifarlab.")], "our constructors declare their own ranges"
    targets = {line.split("_target_:")[1].split("#")[0].strip() for p in (PACKAGE / "conf").rglob("*.yaml")
               for line in p.read_text().splitlines() if "_target_:" in line}
    for target in sorted(t for t in targets if t.startswith("cifarlab.")):
        owner = _locate(target)
        assert owner is not None, f"{target} does not import"
        declared_ranges(owner)  # the annotations resolve


def test_this_test_finds_a_range_checked_by_hand(tmp_path: Path) -> None:
    stray = tmp_path / "stray.py"
    stray.write_text("class C:\n    def __post_init__(self):\n        if self.images < 1:\n            raise ValueError\n")
    assert hand_checked_ranges(stray) == ["stray.py:3"]
