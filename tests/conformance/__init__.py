"""Conformance tests: the storyboard preview server against recorded ComfyUI traffic."""
