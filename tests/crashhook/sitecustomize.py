"""Test-only crash points for a ``corral serve`` process: corral itself never imports this.

A crash test starts the server with this directory on ``PYTHONPATH`` and
``CORRAL_TEST_CRASHPOINTS`` set to JSON ``{"arm": <path>, "targets": ["module:attr", ...]}``.
At start-up every target (a function such as ``os:replace``, or a method such as
``corral.store.blobs:BlobWriter.write``) is wrapped; the wrapper does nothing but call through
until the test writes the arm file, JSON ``{"id", "target", "match", "nth", "reached"}``. Then
the ``nth`` call of ``target`` whose ``repr`` of arguments matches the regular expression
``match`` (any call when it is empty) creates the file ``reached`` and blocks its thread (the
real call is not made), so the test can kill the server with SIGKILL at exactly that point,
ordered by the file's appearance.

The variable is removed from the environment once read, so runner processes the server starts
are not hooked.
"""

from __future__ import annotations

import functools
import importlib
import json
import os
import re
import threading
from collections.abc import Callable
from typing import Any

ENV = "CORRAL_TEST_CRASHPOINTS"

_lock = threading.Lock()
_counts: dict[tuple[str, str], int] = {}


def _armed(arm_path: str) -> dict[str, Any] | None:
    try:
        with open(arm_path, "rb") as f:
            point: dict[str, Any] = json.loads(f.read())
    except (OSError, ValueError):
        return None
    return point


def _wrap(target: str, original: Callable[..., Any], arm_path: str) -> Callable[..., Any]:
    @functools.wraps(original)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        point = _armed(arm_path)
        if (
            point is not None
            and point["target"] == target
            and (not point["match"] or re.search(point["match"], repr(args)))
        ):
            with _lock:
                key = (str(point["id"]), target)
                n = _counts[key] = _counts.get(key, 0) + 1
            if n == int(point["nth"]):
                with open(point["reached"], "w") as f:
                    f.write(target)
                threading.Event().wait()  # until the test kills the process
        return original(*args, **kwargs)

    return wrapper


def _install(spec: dict[str, Any]) -> None:
    arm_path = str(spec["arm"])
    for target in spec["targets"]:
        module_name, _, attr_path = target.partition(":")
        owner: Any = importlib.import_module(module_name)
        *parents, attr = attr_path.split(".")
        for part in parents:
            owner = getattr(owner, part)
        setattr(owner, attr, _wrap(target, getattr(owner, attr), arm_path))


_spec = os.environ.pop(ENV, None)
if _spec:
    _install(json.loads(_spec))
