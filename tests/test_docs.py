"""The documentation sources stay true to the code.

Two checks that need no Sphinx: every public name is in the API reference,
and every doctest-style snippet of the hand-written pages runs and prints
what the page says it prints. A slow one builds the whole site, examples
gallery included, with warnings as errors.
"""

import doctest
import importlib
import pkgutil
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import skperfusion

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
API_SOURCE = DOCS / "api.rst"
# Generated folders hold Sphinx output, not sources.
_GENERATED = {"_build", "auto_examples", "generated"}
# Pages whose snippets train a PHAE: in the slow tier.
_SLOW_PAGES = {"phae_training.rst"}


def _public_modules():
    """Every importable skperfusion module without a private path component."""
    names = ["skperfusion"]
    for info in pkgutil.walk_packages(skperfusion.__path__, "skperfusion."):
        if not any(part.startswith("_") for part in info.name.split(".")):
            names.append(info.name)
    return [importlib.import_module(name) for name in names]


def _documented_objects(source):
    """Objects listed in the ``autosummary`` tables of an API reference source.

    Entries are resolved against the preceding ``currentmodule`` directive,
    as Sphinx does.
    """
    current_module = None
    in_table = False
    documented = []
    for line in source.splitlines():
        directive = re.match(r"\.\. currentmodule:: (\S+)", line)
        if directive:
            current_module = directive.group(1)
        if line.startswith(".. autosummary::"):
            in_table = True
            continue
        if not in_table or not line.strip() or line.lstrip().startswith(":"):
            continue
        if not line.startswith("   "):
            in_table = False
            continue
        name = line.strip().lstrip("~")
        module_name, _, attribute = f"{current_module}.{name}".rpartition(".")
        module = importlib.import_module(module_name)
        assert hasattr(module, attribute), f"{API_SOURCE.name} lists {module_name}.{attribute}, " \
            "which does not exist"
        documented.append(getattr(module, attribute))
    return documented


def test_api_reference_lists_every_public_name():
    documented = _documented_objects(API_SOURCE.read_text(encoding="utf-8"))
    assert documented, "no autosummary entries found in the API reference"
    missing = [
        f"{module.__name__}.{name}"
        for module in _public_modules()
        for name in getattr(module, "__all__", ())
        if not any(getattr(module, name) is obj for obj in documented)
    ]
    assert not missing, f"public names missing from {API_SOURCE.name}: {missing}"


def _pages_with_snippets():
    pages = [
        path for path in sorted(DOCS.rglob("*.rst"))
        if not _GENERATED & set(path.relative_to(DOCS).parts)
        and ">>>" in path.read_text(encoding="utf-8")
    ]
    return [pytest.param(path, id=str(path.relative_to(DOCS)),
                         marks=[pytest.mark.slow] if path.name in _SLOW_PAGES else [])
            for path in pages]


@pytest.mark.parametrize("page", _pages_with_snippets())
def test_page_snippets_run(page, tmp_path, monkeypatch):
    # Snippets that write files write them in a throw-away folder.
    monkeypatch.chdir(tmp_path)
    result = doctest.testfile(
        str(page), module_relative=False, report=True,
        optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE,
    )
    assert result.attempted > 0
    assert result.failed == 0, f"{result.failed} snippet(s) of {page.name} failed (see output)"


@pytest.mark.slow
@pytest.mark.subprocess
def test_documentation_builds_without_warnings(tmp_path):
    """The README's build command, examples gallery included, succeeds with ``-W``.

    The sources are copied first: the build writes its generated pages
    (API stubs, the gallery) next to them, and the tree under test stays clean.
    """
    shutil.copytree(DOCS, tmp_path / "docs", ignore=shutil.ignore_patterns(*_GENERATED))
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    command = [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html",
               "-d", str(tmp_path / "doctrees"), str(tmp_path / "docs"), str(tmp_path / "html")]
    build = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)
    assert build.returncode == 0, f"sphinx-build failed:\n{build.stdout[-3000:]}\n" \
        f"{build.stderr[-6000:]}"
    assert (tmp_path / "html" / "auto_examples" / "plot_compare_deconvolvers.html").is_file()
