"""Typed keys for the objects stored on the aiohttp application."""

from __future__ import annotations

from aiohttp import web

from .engine import Engine
from .hub import Hub
from .settings import PreviewSettings

SETTINGS_KEY = web.AppKey("settings", PreviewSettings)
ENGINE_KEY = web.AppKey("engine", Engine)
HUB_KEY = web.AppKey("hub", Hub)
