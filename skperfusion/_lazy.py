"""PEP 562 lazy attributes, so that importing a package does not import its heavy modules."""

from importlib import import_module


def lazy_attributes(package, attributes, submodules=()):
    """Module ``__getattr__`` and ``__dir__`` importing names on first use.

    Parameters
    ----------
    package : str
        ``__name__`` of the package.
    attributes : dict of str to str
        Public name to the (relative) module defining it.
    submodules : iterable of str, default=()
        Sub-modules reachable as attributes (``package.sub``) without an
        explicit import.

    Returns
    -------
    getattr, dir : callable
        To assign to the package's ``__getattr__`` and ``__dir__``.
    """
    module = import_module(package)
    submodules = frozenset(submodules)
    names = sorted({*attributes, *submodules, *vars(module)})

    def __getattr__(name):
        if name in submodules:
            return import_module(f".{name}", package)
        if name not in attributes:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(import_module(attributes[name], package), name)
        setattr(module, name, value)
        return value

    def __dir__():
        return names

    return __getattr__, __dir__
