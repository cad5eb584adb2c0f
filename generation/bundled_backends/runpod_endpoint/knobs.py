"""Test-only knobs of the local endpoint: make the next requests or jobs fail on purpose.

Served under /_test/ only when the endpoint is started with test knobs on
(`manage.py runpod_endpoint --test-knobs`), and only to callers holding the API
key. Nothing here exists on RunPod; the /v2 paths never change with them.

POST /_test/knobs {"rate_limit_next": N, "retry_after": s, "next_jobs": [script, ...]}
GET  /_test/stats  requests per route and every job's status

A script decides how one job ends instead of running it normally:
  fail          FAILED the way worker-comfyui reports a node that raised
  oom           FAILED with CUDA out of memory in the node's message
  crash         FAILED the way the SDK reports a handler that raised (error is a JSON string)
  timeout       never finishes: the execution timeout makes it TIMED_OUT
  hold          never leaves IN_QUEUE (no worker takes it) until cancelled or past its TTL
  slow:S        waits S seconds in IN_PROGRESS, then runs normally
  legacy        runs, then answers in the pre-5.0.0 shape {"status": "success", "message": <base64>}
  malformed:V   COMPLETED with a broken output; V is one of MALFORMED's keys
"""

from __future__ import annotations

import base64
import json
import os
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

NODE_FAILURE = "Workflow execution error: Node Type: KSampler, Node ID: 3, Message: {}"

MALFORMED: dict[str, Any] = {
    "no_output": None,
    "not_object": "done",
    "no_images": {"status": "success_no_images", "images": []},
    "empty": {"images": [{"filename": "ComfyUI_00001_.png", "type": "base64", "data": ""}]},
    "not_image": {
        "images": [
            {
                "filename": "ComfyUI_00001_.png",
                "type": "base64",
                "data": base64.b64encode(b"not a picture").decode(),
            }
        ]
    },
    "bad_base64": {
        "images": [{"filename": "ComfyUI_00001_.png", "type": "base64", "data": "@@@not base64@@@"}]
    },
    "s3_local_path": {
        "images": [
            {"filename": "ComfyUI_00001_.png", "type": "s3_url", "data": "simulated_uploaded/005c2335.png"}
        ]
    },
    "missing_fields": {"images": [{"filename": "ComfyUI_00001_.png"}]},
}


def malformed_output(variant: str) -> Any:
    if variant == "huge":
        # A valid-looking base64 image of 3 MiB: over a small configured output limit.
        return {
            "images": [
                {
                    "filename": "ComfyUI_00001_.png",
                    "type": "base64",
                    "data": base64.b64encode(os.urandom(3 << 20)).decode(),
                }
            ]
        }
    return MALFORMED[variant]


def crash_error(worker_id: str) -> str:
    return json.dumps(
        {
            "error_type": "<class 'RuntimeError'>",
            "error_message": "the local endpoint was told to crash this job",
            "error_traceback": "Traceback (most recent call last):\n  ...\nRuntimeError: crash\n",
            "hostname": "local-endpoint",
            "worker_id": worker_id,
            "runpod_version": "1.12.0",
        }
    )


@dataclass
class Knobs:
    enabled: bool = False
    rate_limit_next: int = 0
    retry_after: float = 1.0
    next_jobs: list[str] = field(default_factory=list)
    requests: Counter[str] = field(default_factory=Counter)

    def take_script(self) -> str:
        return self.next_jobs.pop(0) if self.next_jobs else ""

    def take_rate_limit(self) -> bool:
        if self.rate_limit_next > 0:
            self.rate_limit_next -= 1
            return True
        return False

    def update(self, body: dict[str, Any]) -> None:
        if "rate_limit_next" in body:
            self.rate_limit_next = int(body["rate_limit_next"])
        if "retry_after" in body:
            self.retry_after = float(body["retry_after"])
        for script in body.get("next_jobs") or []:
            name = str(script)
            variant = name.split(":", 1)[1] if name.startswith("malformed:") else ""
            if variant and variant != "huge" and variant not in MALFORMED:
                raise ValueError(f"unknown malformed output {variant!r}")
            self.next_jobs.append(name)
