"""A local RunPod-compatible serverless endpoint running worker-comfyui's job logic.

It speaks the cloud API of RunPod serverless (paths, statuses, fields, auth) and
runs each job against a ComfyUI-compatible server, such as the storyboard
preview server, the way the worker-comfyui image does. The tests use it as the
RunPod peer, and the embedded studio can run it as a second backend. This
package must not import Django.
"""

from .app import EndpointSettings, create_app
from .server import run_endpoint
from .worker import S3Target

__all__ = ["EndpointSettings", "S3Target", "create_app", "run_endpoint"]
