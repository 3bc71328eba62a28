"""Runs inside the grading kernel: fixed seeds, and a guard around the test cells.

The kernelspec of the grading sandbox runs :func:`install` before the first cell of the
notebook. It seeds ``random`` and NumPy and takes a snapshot of what the test cells rely
on: the builtins, the functions of ``math`` and NumPy (``numpy``, ``numpy.linalg``,
``numpy.testing``), and the IPython machinery that runs a cell and reports its error
(``run_cell`` and friends, ``showtraceback``, the input and AST transformers, the trace
and profile hooks).

Before (and after) every test cell, the grader (:class:`grader.grading.preprocessors.SandboxedExecute`) asks
the kernel, through an ``execute_request``'s ``user_expressions``, to run :func:`check`:
it puts back anything the notebook replaced and reports what it found, so the test runs
with the real ``len``, ``np.allclose`` and ``assert`` machinery and the grader marks the
submission ``tampered``. Names that the notebook merely *shadows* (``sum = 0`` at top
level) and that the test uses are removed from the namespace for the test; that is
reported but is not tampering.

It also watches what carries a test's outcome out of the kernel — the kernel's
``do_execute`` and message handlers, its session's ``send`` — and its own functions.

This is a guard, not a security boundary: it runs in the same interpreter as the student
code, so code written to defeat this very module can do so (e.g. by replacing ``check``
through a reference the guard does not know of, or by forging its answer after reading
the nonce). The README's sandbox section lists this residual risk and what an
instructor can do about it. What student code cannot
do — read the hidden tests from disk, write the gradebook or ``grades.csv``, reach the
network — is enforced outside the kernel by :mod:`grader.sandbox.isolation`.
"""

from __future__ import annotations

import importlib
import json
import sys
import threading
import types

WATCHED_MODULES = ("builtins", "math", "numpy", "numpy.linalg", "numpy.testing", "movierec.checks")
SHELL_METHODS = (
    "run_cell", "run_cell_async", "run_ast_nodes", "run_code", "transform_cell", "transform_ast",
    "showtraceback", "_showtraceback", "showsyntaxerror", "user_expressions", "ev", "ex", "should_run_async",
)
SHELL_LISTS = ("input_transformers_cleanup", "input_transformers_post", "ast_transformers")
# The kernel's own machinery between a cell and the grader: how it runs a request and what it sends back.
KERNEL_METHODS = ("do_execute", "execute_request", "send_response", "dispatch_shell", "process_one",
                  "_publish_execute_input", "_publish_status", "_send_abort_reply")
SESSION_METHODS = ("send", "serialize", "sign", "msg", "msg_header")
GUARD_FUNCTIONS = ("check", "install", "_restore_modules", "_restore_shell", "_restore_kernel", "_restore_tracing",
                   "_unshadow")

_state: dict = {}


def _watched(value: object) -> bool:
    """Functions, classes and modules: what a test calls. (Data attributes may change.)"""
    return callable(value) or isinstance(value, types.ModuleType)


def install(seed: int = 42) -> None:
    import random

    random.seed(seed)
    modules = {}
    for name in WATCHED_MODULES:
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        if name == "numpy":
            module.random.seed(seed)
        values = {k: v for k, v in vars(module).items() if _watched(v)}
        if name == "builtins":  # IPython puts exit/quit/get_ipython in and out of builtins itself
            values = {k: v for k, v in values.items() if isinstance(v, (type, types.BuiltinFunctionType))}
        modules[name] = (module, values)
    shell = _shell()
    cls = type(shell) if shell is not None else None
    _state.update(
        modules=modules,
        shell=shell,
        methods={n: cls.__dict__.get(n, getattr(cls, n, None)) for n in SHELL_METHODS} if cls else {},
        instance={n: vars(shell)[n] for n in SHELL_METHODS if n in vars(shell)} if shell is not None else {},
        method_owner=cls,
        lists={n: list(getattr(shell, n, [])) for n in SHELL_LISTS} if shell is not None else {},
        kernel=_snapshot_kernel(getattr(shell, "kernel", None)),
        guard={name: globals()[name] for name in GUARD_FUNCTIONS if name in globals()},
    )


def _methods(obj: object, names: tuple[str, ...]) -> dict:
    cls = type(obj)
    return {n: (cls.__dict__.get(n, getattr(cls, n, None)), vars(obj).get(n, _MISSING) if hasattr(obj, "__dict__")
                else _MISSING) for n in names}


def _snapshot_kernel(kernel: object) -> dict:
    """The kernel's and its session's methods and message handlers, as the kernel started."""
    if kernel is None:
        return {}
    session = getattr(kernel, "session", None)
    handlers = getattr(kernel, "shell_handlers", None)
    return {
        "kernel": kernel, "kernel_class": type(kernel), "kernel_methods": _methods(kernel, KERNEL_METHODS),
        "session": session, "session_class": type(session) if session is not None else None,
        "session_methods": _methods(session, SESSION_METHODS) if session is not None else {},
        "handlers": dict(handlers) if isinstance(handlers, dict) else None,
    }


def _restore_methods(obj: object, cls: type, saved: dict, label: str, problems: list[str]) -> None:
    for name, (original, own) in saved.items():
        if original is not None and cls.__dict__.get(name, getattr(cls, name, None)) is not original:
            problems.append(f"{label} class method {name} was replaced")
            setattr(cls, name, original)
        current = vars(obj).get(name, _MISSING) if hasattr(obj, "__dict__") else _MISSING
        if current is not own:
            problems.append(f"{label}.{name} was replaced")
            if own is _MISSING:
                delattr(obj, name)
            else:
                setattr(obj, name, own)


def _restore_kernel(problems: list[str]) -> None:
    """Put back the kernel's execute path and its session's ``send``: what carries a test's outcome out."""
    saved = _state.get("kernel") or {}
    if not saved:
        return
    kernel, session = saved["kernel"], saved["session"]
    if type(kernel) is not saved["kernel_class"]:
        problems.append("the kernel's class was replaced")
        kernel.__class__ = saved["kernel_class"]
    _restore_methods(kernel, saved["kernel_class"], saved["kernel_methods"], "the kernel", problems)
    if session is not None:
        if getattr(kernel, "session", None) is not session:
            problems.append("the kernel's session was replaced")
            kernel.session = session
        if type(session) is not saved["session_class"]:
            problems.append("the session's class was replaced")
            session.__class__ = saved["session_class"]
        _restore_methods(session, saved["session_class"], saved["session_methods"], "the session", problems)
    handlers = getattr(kernel, "shell_handlers", None)
    if saved["handlers"] is not None and (not isinstance(handlers, dict) or any(
            handlers.get(k) != v for k, v in saved["handlers"].items())):
        problems.append("the kernel's message handlers were replaced")
        kernel.shell_handlers = dict(saved["handlers"])


def _restore_guard(problems: list[str]) -> None:
    """The guard's own functions: a notebook that replaced them is reported (see the residual risk below)."""
    module = sys.modules.get(__name__)
    for name, original in (_state.get("guard") or {}).items():
        if module is None or getattr(module, name, None) is not original:
            problems.append(f"the grading guard's {name} was replaced")
            if module is not None:
                setattr(module, name, original)


def _shell():
    try:
        from IPython import get_ipython
    except ImportError:
        return None
    return get_ipython()


def _restore_modules(problems: list[str]) -> None:
    for name, (module, values) in _state["modules"].items():
        if sys.modules.get(name) is not module:
            problems.append(f"sys.modules[{name!r}] was replaced")
            sys.modules[name] = module
        current = vars(module)
        for key, value in values.items():
            if current.get(key, _MISSING) is not value:
                problems.append(f"{name}.{key} was {'deleted' if key not in current else 'replaced'}")
                current[key] = value


def _restore_shell(problems: list[str]) -> None:
    shell = _state.get("shell")
    if shell is None:
        return
    cls = _state["method_owner"]
    if type(shell) is not cls:
        problems.append("the IPython shell's class was replaced")
        shell.__class__ = cls
    instance = _state["instance"]  # ipykernel itself sets a few methods on the instance
    for name, original in _state["methods"].items():
        if vars(shell).get(name, _MISSING) is not instance.get(name, _MISSING):
            problems.append(f"the IPython shell's {name} was replaced")
            if name in instance:
                setattr(shell, name, instance[name])
            else:
                delattr(shell, name)
        if original is not None and cls.__dict__.get(name, getattr(cls, name, None)) is not original:
            problems.append(f"IPython's {cls.__name__}.{name} was replaced")
            setattr(cls, name, original)
    for name, original in _state["lists"].items():
        current = getattr(shell, name, None)
        if not isinstance(current, list) or list(current) != original:
            problems.append(f"the IPython shell's {name} were changed")
            if isinstance(current, list):
                current[:] = original
            else:
                setattr(shell, name, list(original))


def _restore_tracing(problems: list[str]) -> None:
    if sys.gettrace() is not None:
        problems.append("sys.settrace was used")
        sys.settrace(None)
    if sys.getprofile() is not None:
        problems.append("sys.setprofile was used")
        sys.setprofile(None)
    if getattr(threading, "_trace_hook", None) is not None or getattr(threading, "_profile_hook", None) is not None:
        problems.append("threading.settrace/setprofile was used")
        threading.settrace(None)
        threading.setprofile(None)


def _unshadow(names: list[str], notes: list[str]) -> None:
    shell = _state.get("shell")
    builtins_values = _state["modules"].get("builtins", (None, {}))[1]
    if shell is None:
        return
    namespace = shell.user_ns
    for name in names:
        if name in namespace and name in builtins_values and namespace[name] is not builtins_values[name]:
            notes.append(name)
            del namespace[name]


def check(nonce: str, names: list[str] | tuple[str, ...] = ()) -> str:
    """Put back what the notebook replaced; report it as JSON (echoing ``nonce``)."""
    problems: list[str] = []
    notes: list[str] = []
    if not _state:
        problems.append("the grading guard was not installed when the kernel started")
    else:
        _restore_tracing(problems)
        _restore_guard(problems)
        _restore_modules(problems)
        _restore_shell(problems)
        _restore_kernel(problems)
        _unshadow(list(names), notes)
    return json.dumps({"nonce": nonce, "tampered": problems, "unshadowed": notes})


_MISSING = object()
