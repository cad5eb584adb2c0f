"""Input images: upload_image() names what LoadImage should load, and the bytes come back intact."""

# Fixtures come from provider_fixtures (not conftest.py); a test's argument of the same name
# is how pytest passes them, which pyflakes reads as a redefinition.
# ruff: noqa: F811

from __future__ import annotations

from typing import Any

import pytest

from generation.providers.base import ErrorCode, ProviderError, RemoteOutput
from generation.providers.comfyui import ComfyUIProvider

from .conftest import DATA_DIR, recorded_step
from .provider_fixtures import open_target  # noqa: F401 (fixtures)

UPLOAD = "upload_image_and_view.json"
NAME = "rec_upload_46f82c.png"
SUB_NAME = "sub_rec_upload_46f82c.png"


def _fetch_input(provider: ComfyUIProvider, name: str, subfolder: str = "") -> bytes:
    # An uploaded input is read back like an output, from the `input` folder type.
    output = RemoteOutput(node_id="", filename=name, subfolder=subfolder, folder_type="input", kind="image")
    with provider.fetch(output) as chunks:
        return b"".join(chunks)


def test_an_uploaded_image_is_named_for_load_image_with_its_subfolder_and_reads_back_unchanged(
    open_target: Any,
) -> None:
    target = open_target(UPLOAD)
    provider = target.provider()
    content = (DATA_DIR / "sample_upload.png").read_bytes()

    assert provider.upload_image(NAME, content) == NAME
    assert provider.upload_image(SUB_NAME, content, subfolder="rec_sub") == f"rec_sub/{SUB_NAME}"
    if target.replay is not None:
        recorded = recorded_step(UPLOAD, "upload into subfolder")["request"]["form_fields"]
        assert recorded == {"subfolder": "rec_sub", "type": "input"}

    # ComfyUI refuses a name or subfolder that climbs out of input/; nothing to retry elsewhere.
    for name, subfolder in (("../evil.png", ""), ("evil2.png", "../..")):
        with pytest.raises(ProviderError) as caught:
            provider.upload_image(name, content, subfolder=subfolder)
        assert caught.value.code == ErrorCode.WORKFLOW_REJECTED, caught.value

    assert _fetch_input(provider, NAME) == content
    assert _fetch_input(provider, SUB_NAME, "rec_sub") == content
