"""torch-style text for image and mask batches.

ComfyUI puts `str(tensor)` of a failing node's inputs into `execution_error`
(`current_inputs`). Reproducing torch's layout keeps those messages looking
the same, and only the printed corner of a large image is ever read.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from PIL import Image

_EDGE_ITEMS = 3
_SUMMARIZE_ABOVE = 1000
_LINE_WIDTH = 80
_PREFIX = "tensor("

Getter = Callable[[tuple[int, ...]], float]


def _indices(size: int, summarize: bool) -> list[int | None]:
    """Indices torch prints along one dimension; None marks the '...' gap."""
    if summarize and size > 2 * _EDGE_ITEMS:
        return [*range(_EDGE_ITEMS), None, *range(size - _EDGE_ITEMS, size)]
    return list(range(size))


def _printed_values(shape: Sequence[int], get: Getter, summarize: bool) -> list[float]:
    values: list[float] = []

    def walk(prefix: tuple[int, ...]) -> None:
        if len(prefix) == len(shape):
            values.append(get(prefix))
            return
        for index in _indices(shape[len(prefix)], summarize):
            if index is not None:
                walk((*prefix, index))

    walk(())
    return values


class _Formatter:
    """Mirror of torch's _Formatter for float tensors (fixed precision 4)."""

    def __init__(self, values: Sequence[float]) -> None:
        finite = [abs(v) for v in values if math.isfinite(v) and v != 0]
        self.int_mode = all(v == math.ceil(v) for v in finite)
        self.sci_mode = False
        self.width = 1
        if not finite:
            return
        low, high = min(finite), max(finite)
        if self.int_mode:
            self.sci_mode = high / low > 1000.0 or high > 1.0e8
        else:
            self.sci_mode = high / low > 1000.0 or high > 1.0e8 or low < 1.0e-4
        self.width = max(len(self._raw(v)) for v in values)

    def _raw(self, value: float) -> str:
        if self.sci_mode:
            return f"{value:.4e}"
        if self.int_mode:
            return f"{value:.0f}." if math.isfinite(value) else f"{value:.0f}"
        return f"{value:.4f}"

    def __call__(self, value: float) -> str:
        text = self._raw(value)
        return " " * (self.width - len(text)) + text


def format_tensor(shape: Sequence[int], get: Getter) -> str:
    """Render a float tensor of `shape` whose elements come from `get`."""
    numel = math.prod(shape)
    summarize = numel > _SUMMARIZE_ABOVE
    formatter = _Formatter(_printed_values(shape, get, summarize))

    def vector(prefix: tuple[int, ...], indent: int) -> str:
        items = [
            " ..." if index is None else formatter(get((*prefix, index)))
            for index in _indices(shape[-1], summarize)
        ]
        per_line = max(1, (_LINE_WIDTH - indent) // (formatter.width + 2))
        lines = [", ".join(items[i : i + per_line]) for i in range(0, len(items), per_line)]
        return "[" + ("," + "\n" + " " * (indent + 1)).join(lines) + "]"

    def block(prefix: tuple[int, ...], indent: int) -> str:
        remaining = len(shape) - len(prefix)
        if remaining == 1:
            return vector(prefix, indent)
        parts = [
            "..." if index is None else block((*prefix, index), indent + 1)
            for index in _indices(shape[len(prefix)], summarize)
        ]
        return "[" + ("," + "\n" * (remaining - 1) + " " * (indent + 1)).join(parts) + "]"

    return _PREFIX + block((), len(_PREFIX)) + ")"


def format_image_batch(frames: Sequence[Image.Image]) -> str:
    """IMAGE tensors are [batch, height, width, channels] with values 0..1."""
    first = frames[0]
    shape = (len(frames), first.height, first.width, len(first.getbands()))

    def get(index: tuple[int, ...]) -> float:
        batch, y, x, channel = index
        pixel = frames[batch].getpixel((x, y))
        value = pixel[channel] if isinstance(pixel, tuple) else pixel
        return float(value or 0) / 255.0

    return format_tensor(shape, get)


def format_mask_batch(frames: Sequence[Image.Image]) -> str:
    """MASK tensors are [batch, height, width] with values 0..1."""
    first = frames[0]
    shape = (len(frames), first.height, first.width)

    def get(index: tuple[int, ...]) -> float:
        batch, y, x = index
        pixel = frames[batch].getpixel((x, y))
        value = pixel[0] if isinstance(pixel, tuple) else pixel
        return float(value or 0) / 255.0

    return format_tensor(shape, get)
