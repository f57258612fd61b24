"""Python objects named on the command line as ``module:attribute`` (upcasters, rules)."""

from __future__ import annotations

import importlib
import os
import sys
from typing import Any

from cronica.errors import InvalidInputError


def load_object(spec: str, kind: type[Any], option: str) -> Any:
    """The object named ``module:attribute`` (modules are also looked up in the current
    folder), which must be a ``kind``."""
    found = load_attribute(spec, option)
    if not isinstance(found, kind):
        raise InvalidInputError(
            f"{option}: {spec} is {type(found).__name__}, not a {kind.__name__}"
        )
    return found


def load_attribute(spec: str, option: str) -> Any:
    """The object named ``module:attribute``, whatever it is."""
    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise InvalidInputError(f"{option} takes module:attribute, not {spec!r}")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise InvalidInputError(f"{option}: cannot import {module_name!r}: {exc}") from exc
    except Exception as exc:  # the module's own code failed: a SyntaxError, a raise at import
        raise InvalidInputError(
            f"{option}: importing {module_name!r} failed: {type(exc).__name__}: {exc}"
        ) from exc
    if not hasattr(module, attribute):
        raise InvalidInputError(f"{option}: module {module_name!r} has no {attribute!r}")
    return getattr(module, attribute)
