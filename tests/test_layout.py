"""The shape the code keeps: one home per concern, small modules, no work at import time, failures classified by
type (never by message text)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from sqlalchemy.exc import OperationalError

from core.jobs.failures import FailureClass, classify
from core.storage import StorageError
from models.errors import BackendUnavailable, CapabilityError, CoverageError, MediaError, TaskInputError
from tests.support import REPO, env_for

MAX_LINES = 400


@pytest.mark.parametrize("package", ["core", "api", "models", "workers", "cli"])
def test_no_module_passes_400_lines(package: str) -> None:
    long = {
        str(p.relative_to(REPO)): n
        for p in (REPO / package).rglob("*.py")
        if (n := len(p.read_text().splitlines())) > MAX_LINES
    }
    assert long == {}


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (MediaError("corrupt"), FailureClass.MEDIA),
        (TaskInputError("ocr on audio"), FailureClass.INVALID_INPUT),
        (CapabilityError("no talker"), FailureClass.UNSUPPORTED),
        (BackendUnavailable("no vllm"), FailureClass.UNSUPPORTED),
        (CoverageError("gap"), FailureClass.ENGINE),
        (torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2 GiB"), FailureClass.OUT_OF_MEMORY),
        (MemoryError(), FailureClass.OUT_OF_MEMORY),
        (StorageError("reset"), FailureClass.TRANSIENT),
        (OperationalError("select 1", {}, Exception("server closed the connection")), FailureClass.TRANSIENT),
        (ConnectionError("refused"), FailureClass.TRANSIENT),
        (RuntimeError("CUDA out of memory"), FailureClass.INTERNAL),  # the text does not matter, the type does
        (ValueError("bug"), FailureClass.INTERNAL),
    ],
)
def test_failures_are_classified_by_type(error: BaseException, expected: FailureClass) -> None:
    assert classify(error) is expected


def test_importing_everything_registers_no_global_session_listener() -> None:
    """Importing the service (API, workers, CLI) hooks nothing onto every SQLAlchemy Session in the process: the
    outbox hands deliveries off through a listener on the one session that wrote them."""
    code = (
        "import api.app, workers.tasks, workers.webhooks, cli.main, core.embedded, core.maintenance\n"
        "from sqlalchemy.orm import Session\n"
        "hooks = ('after_commit', 'after_rollback', 'before_commit', 'after_flush', 'after_begin')\n"
        "print(sorted(h for h in hooks if list(getattr(Session.dispatch, h)._clslevel.get(Session, ()))))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env_for(), cwd=REPO
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_import_contracts_hold() -> None:
    """Entry points over core over models, models free of Celery/FastAPI/SQLAlchemy, no cycles (import-linter)."""
    lint = Path(sys.executable).parent / "lint-imports"
    done = subprocess.run([str(lint), "--no-cache"], capture_output=True, text=True, timeout=120, cwd=REPO)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "5 kept, 0 broken" in done.stdout


def test_gpu_memory_metric_ignores_a_torch_still_being_imported(monkeypatch: pytest.MonkeyPatch) -> None:
    """A prefetching decoder thread may be importing torch while a job finishes: the metric must not read the
    half-made module (the first caption run on a fresh folder crashed with "partially initialized module")."""
    import importlib.machinery
    import types

    from core import metrics

    half = types.ModuleType("torch")
    half.__spec__ = importlib.machinery.ModuleSpec("torch", None)
    half.__spec__._initializing = True  # what the import system sets while the module body runs
    monkeypatch.setitem(sys.modules, "torch", half)
    metrics.record_gpu_memory()  # used to raise AttributeError: module 'torch' has no attribute 'cuda'
    assert not hasattr(half, "cuda")


def test_the_runner_contract_forbids_every_models_module_but_its_three() -> None:
    """core.jobs.runner may import models.pipeline, models.errors and models.tasks only: the import-linter
    contract lists every other module of models/, so a module added there is forbidden to the runner too."""
    import tomllib

    config = tomllib.loads((REPO / "pyproject.toml").read_text())
    (contract,) = [
        c for c in config["tool"]["importlinter"]["contracts"] if c.get("source_modules") == ["core.jobs.runner"]
    ]
    modules = {f"models.{p.stem}" for p in (REPO / "models").glob("*.py") if p.stem != "__init__"}
    modules |= {f"models.{p.name}" for p in (REPO / "models").iterdir() if (p / "__init__.py").is_file()}
    allowed = {"models.pipeline", "models.errors", "models.tasks"}
    assert set(contract["forbidden_modules"]) == modules - allowed
