"""Sphinx configuration of the skperfusion documentation.

Build (warnings are errors)::

    sphinx-build -W --keep-going -b html docs docs/_build/html
"""

import os
import re
from pathlib import Path

# Set before skperfusion (and so matplotlib and torch) is imported. Examples
# and API pages import matplotlib: never open a window. The examples' arrays
# are small: one torch/BLAS thread avoids the oversubscription that made their
# PHAE steps several times slower with two threads on a busy 2-core machine.
os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import skperfusion

project = "skperfusion"
author = "skperfusion developers"
copyright = "2025, skperfusion developers"
version = release = skperfusion.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "numpydoc",
    "sphinx_gallery.gen_gallery",
]

templates_path = ["_templates"]
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store"]
root_doc = "index"

# No intersphinx: the documentation builds offline.

autosummary_generate = True
autodoc_typehints = "none"

# The class template lists members itself; numpydoc's own member tables
# would duplicate them and point at pages autosummary does not generate.
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_attributes_as_param_list = True
# Fail the build on undocumented or unknown parameters, missing docstrings,
# missing Returns sections and missing summaries.
numpydoc_validation_checks = {"GL08", "PR01", "PR02", "PR10", "RT01", "SS01"}
# Module constants are validated against their type's docstring (e.g. dict's);
# their own attribute docstrings are read by autodoc instead.
numpydoc_validation_exclude = {r"\.[A-Z][A-Z0-9_]*$", r"\.__version__$"}

sphinx_gallery_conf = {
    "examples_dirs": [str(Path(__file__).parent.parent / "examples")],
    "gallery_dirs": ["auto_examples"],
    "filename_pattern": r"/plot_",
    "within_subsection_order": "FileNameSortKey",
    "doc_module": ("skperfusion",),
    "backreferences_dir": "generated/backreferences",
    "reference_url": {"skperfusion": None},
    "remove_config_comments": True,
    "show_memory": False,
    "write_computation_times": False,
    "min_reported_time": 1,
    "matplotlib_animations": False,
}

html_theme = "pydata_sphinx_theme"
html_title = f"skperfusion {release}"
html_theme_options = {
    "navigation_with_keys": False,
    "show_toc_level": 2,
    "secondary_sidebar_items": ["page-toc"],
}
html_show_sourcelink = False


# Request setters that scikit-learn generates on every estimator; their
# docstrings cross-reference scikit-learn's own documentation, which this
# offline build cannot resolve. Users find them in scikit-learn's docs.
_SKLEARN_MIXIN_MEMBERS = re.compile(r"^set_\w+_request$")


def _skip_sklearn_request_methods(app, what, name, obj, skip, options):
    if _SKLEARN_MIXIN_MEMBERS.match(name):
        return True
    return None


def _write_cli_reference(app):
    """Write the ``--help`` of every sub-command, so the CLI page matches the code."""
    from skperfusion.cli import build_parser

    # argparse wraps to the terminal width; fix it for a reproducible page.
    os.environ["COLUMNS"] = "90"
    parser = build_parser()
    (subparsers,) = (action for action in parser._actions
                     if action.__class__.__name__ == "_SubParsersAction")
    lines = []
    for name, subparser in subparsers.choices.items():
        title = f"``skperfusion {name}``"
        lines += [title, "-" * len(title), "", ".. code-block:: text", ""]
        lines += ["   " + line if line else "" for line in subparser.format_help().splitlines()]
        lines.append("")
    lines += ["``skperfusion``", "---------------", "", ".. code-block:: text", ""]
    lines += ["   " + line if line else "" for line in parser.format_help().splitlines()]
    target = Path(app.srcdir) / "generated" / "cli_reference.rst.inc"
    target.parent.mkdir(exist_ok=True)
    text = "\n".join(lines) + "\n"
    # Rewriting an unchanged file would make Sphinx rebuild the page every time.
    if not target.exists() or target.read_text(encoding="utf-8") != text:
        target.write_text(text, encoding="utf-8")


def setup(app):
    app.connect("autodoc-skip-member", _skip_sklearn_request_methods)
    app.connect("builder-inited", _write_cli_reference)
