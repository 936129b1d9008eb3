"""Docstring fragments shared by several estimators, written once (as nilearn's ``fill_doc``).

A docstring names a fragment by a line ``%(name)s`` on its own; :func:`fill_doc`
replaces it by the fragment, indented as that line. Only the names of
:data:`DOCS` are replaced, so docstrings keep their ``%`` signs (``by 5 %``).
"""

import re

__all__ = ["DOCS", "fill_doc"]

DOCS = {
    # The Parameters section of a function of a derivatives dataset, then its Returns heading.
    "dataset_root_returns": """\
Parameters
----------
out_dir : str or path-like
    The dataset root.

Returns
-------""",
    # The start of the Parameters section of a study figure of the patients' ratios.
    "ratios_grades_parameters": """\
Parameters
----------
ratios : pandas.DataFrame of shape (n_patients, n_methods)
    Ratios, one column per method.
grades : array_like of shape (n_patients,)
    Grade of each patient.""",
    # The Parameters section of a method taking fitted curves, then its Returns heading.
    "X_fitted_curves_returns": """\
Parameters
----------
X : array_like of shape (n_samples, 2, n_times) or (n_samples, 2 * n_times)
    Tissue and arterial concentration curves with the ``n_times``
    seen in ``fit``.

Returns
-------""",
    # The Parameters section of a ratio classifier's method, then its Returns heading.
    "ratios_parameters_returns": """\
Parameters
----------
X : array_like of shape (n_samples, n_features)
    Ratios, with the columns seen in ``fit``.

Returns
-------""",
    "fitted_curve_attributes": """\
n_features_in_ : int
    ``2 · n_times``.
feature_names_in_ : ndarray of str
    Input column names, when ``X`` has string column names.
n_times_ : int
    Number of time points seen in ``fit``.""",
}
"""Fragments by name: numpydoc entries, indented from column 0."""

_PLACEHOLDER = re.compile(r"^([ \t]*)%\((\w+)\)s[ \t]*$", re.MULTILINE)


def fill_doc(obj):
    """Replace the ``%(name)s`` lines of a docstring by the fragments of :data:`DOCS`.

    Parameters
    ----------
    obj : class or function
        Object whose ``__doc__`` holds placeholders.

    Returns
    -------
    obj : class or function
        The same object, its docstring filled (a decorator).
    """

    def fragment(match):
        indent, name = match.groups()
        if name not in DOCS:
            raise KeyError(f"{obj.__qualname__}'s docstring names an unknown fragment {name!r}")
        return "\n".join(indent + line if line else line for line in DOCS[name].splitlines())

    obj.__doc__ = _PLACEHOLDER.sub(fragment, obj.__doc__)
    return obj
