"""Backends the studio bundles and runs itself, apart from the orchestrator that drives them.

- `preview_server`: a ComfyUI-compatible server that renders storyboard frames without a GPU;
  the embedded studio's default backend, and the stand-in for ComfyUI in tests.
- `runpod_endpoint`: a local RunPod-serverless-compatible endpoint that runs jobs the way the
  worker-comfyui image does, against a ComfyUI server (the preview server by default).

They speak only the public protocols (shared with real servers) and import nothing of the
orchestrator: the import-linter contracts in pyproject.toml keep it so.
"""
