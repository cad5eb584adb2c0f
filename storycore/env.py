"""Small readers for environment variables that reject bad values loudly.

A typo in a deployment's environment should stop the process at start-up with a
message naming the variable, never fall back to a default without saying so.
"""

import os
import re
import secrets
import tempfile
from pathlib import Path


class EnvError(ValueError):
    pass


def env_str(name: str, default: str) -> str:
    value = os.environ.get(name)
    return default if value is None or value == "" else value


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    lowered = raw.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise EnvError(f"{name}={raw!r} is not a boolean; use true/false, yes/no, on/off or 1/0")


def env_int(name: str, default: int, *, minimum: int | None = None) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise EnvError(f"{name}={raw!r} is not an integer") from None
    if minimum is not None and value < minimum:
        raise EnvError(f"{name}={value} is below the minimum of {minimum}")
    return value


def env_float(name: str, default: float, *, minimum: float | None = None) -> float:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise EnvError(f"{name}={raw!r} is not a number") from None
    if minimum is not None and value < minimum:
        raise EnvError(f"{name}={value} is below the minimum of {minimum}")
    return value


def env_list(name: str, default: list[str]) -> list[str]:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    return [item.strip() for item in raw.split(",") if item.strip()]


def env_name_patterns(name: str, default: list[str]) -> list[str]:
    """Names of environment variables, each exact (RUNPOD_API_KEY) or a prefix ending in * (RUNPOD_*)."""
    patterns = env_list(name, default)
    for pattern in patterns:
        if not re.fullmatch(r"[A-Z_][A-Z0-9_]*\*?", pattern):
            raise EnvError(
                f"{name}: {pattern!r} is neither a variable name nor a prefix ending in *; "
                "use capital letters, digits and _, e.g. RUNPOD_*"
            )
    return patterns


def secret_key_from(name: str, keep_in: Path) -> str:
    """The secret key from the environment, or one generated once and kept in a file.

    Kept on disk so that sessions and signed values survive a restart of the
    embedded studio; the file is created readable by its owner only.
    """
    value = os.environ.get(name)
    if value:
        return value
    if keep_in.exists():
        return keep_in.read_text().strip()
    keep_in.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(50)
    # Written whole under a name of its own, then linked into place: processes that start together
    # on a fresh folder all end up with the one key that was linked first, never a half-written one.
    fd, written = tempfile.mkstemp(dir=keep_in.parent, prefix=".secret_key.")
    try:
        with os.fdopen(fd, "w") as handle:  # mkstemp makes it readable by its owner only
            handle.write(key)
        os.link(written, keep_in)
    except FileExistsError:
        return keep_in.read_text().strip()
    finally:
        os.unlink(written)
    return key
