"""relay/__init__.py: its module map names every module of the library, so that it cannot go stale unseen."""

import re
from pathlib import Path

import relay

LIBRARY = Path(relay.__file__).resolve().parent


def test_the_module_map_names_every_module_and_package_of_the_library():
    # GIVEN the library's modules and subpackages
    modules = sorted({path.stem for path in LIBRARY.glob("*.py")} - {"__init__"}
                     | {path.parent.name for path in LIBRARY.glob("*/__init__.py")})
    assert "providers" in modules and len(modules) > 20
    # THEN the package's docstring names each as ``name``
    named = set(re.findall(r"``(\w+)``", relay.__doc__ or ""))
    assert [module for module in modules if module not in named] == []
