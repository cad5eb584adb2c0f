"""Storyboard preview server: a ComfyUI-compatible HTTP + WebSocket server without a GPU.

It accepts ComfyUI API-format workflows and answers exactly like ComfyUI
0.3.64 on the wire, but its "renders" are labelled storyboard frames drawn
with Pillow. This package must not import Django.
"""

from .app import create_app
from .server import run_server
from .settings import PreviewSettings

__all__ = ["PreviewSettings", "create_app", "run_server"]
