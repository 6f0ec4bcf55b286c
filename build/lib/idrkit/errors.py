"""The one small error hierarchy of idrkit.

The CLI turns an :class:`IdrkitError` into one line on stderr and a non-zero exit code;
any other exception is a bug and may show a traceback.
"""


class IdrkitError(Exception):
    """Base class of every error idrkit reports to a user."""

    exit_code = 1


class InputError(IdrkitError):
    """Bad input data: a malformed file, an invalid residue, mismatched labels."""

    exit_code = 2


class ModelError(IdrkitError):
    """A model that cannot be built, trained, saved or loaded."""

    exit_code = 3


class OutputError(IdrkitError):
    """An output that cannot be written: a read-only place, a full disk, an output in use."""

    exit_code = 5


class MissingDependencyError(IdrkitError):
    """An optional extra or external program is not installed."""

    exit_code = 4

    def __init__(self, what: str, install: str):
        super().__init__(f"{what} is not installed; install it with: {install}")


def require(module: str, extra: str):
    """Import an optional module or raise an error naming the extra that provides it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise MissingDependencyError(
            f"the optional dependency '{module}' ({exc})", f"pip install 'idrkit[{extra}]'"
        ) from None


def run_main(main, name: str, *args) -> int:
    """Run ``main(*args)`` for the CLI or a script; an :class:`IdrkitError` becomes one line on stderr
    (``NAME: error: ...``) and its exit code."""
    import sys

    try:
        return main(*args)
    except IdrkitError as exc:
        print(f"{name}: error: {exc}", file=sys.stderr)
        return exc.exit_code
