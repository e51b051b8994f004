"""GPU pinning: CUDA_VISIBLE_DEVICES is set before torch is imported, one worker process per GPU slot."""

from __future__ import annotations

import os
import socket


def pin(gpu: str | None, queues: list[str]) -> str:
    """Pin this process to one GPU (or none) and return the worker's default node name: gpu0@host, or for a CPU
    worker its queues, e.g. webhooks@host (so a node's CPU workers do not share one name)."""
    if "torch" in __import__("sys").modules:
        raise RuntimeError("torch was imported before GPU pinning; CUDA_VISIBLE_DEVICES would be ignored")
    host = socket.gethostname()
    if gpu is None or gpu == "":
        return f"{'-'.join(queues) or 'cpu'}@{host}"
    os.environ["CUDA_VISIBLE_DEVICES"] = gpu
    return f"gpu{gpu.replace(',', '-')}@{host}"
