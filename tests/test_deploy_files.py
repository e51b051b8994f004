"""No Docker engine runs here: the compose file and Dockerfiles are validated by parsing them."""

from __future__ import annotations

from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent


def test_compose_services_ports_env_and_gpu_reservations() -> None:
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    services = compose["services"]
    assert {"api", "migrate", "worker-gpu0", "worker-gpu1", "redis", "postgres", "s3", "flower", "maintenance"} <= set(
        services
    )
    assert services["api"]["ports"] == ["8000:8000"] and services["flower"]["ports"] == ["127.0.0.1:5555:5555"]
    published = {name for name, service in services.items() if service.get("ports")}
    assert published == {"api", "flower"}, "S3, Prometheus and metrics ports stay on the compose network"
    assert services["migrate"]["command"] == ["omnimedia", "db", "upgrade"] and services["migrate"]["restart"] == "no"
    device_ids = []
    for name in ("worker-gpu0", "worker-gpu1"):
        service = services[name]
        env = service["environment"]
        assert env["OMNIMEDIA_MODE"] == "celery" and env["OMNIMEDIA_BROKER_URL"].startswith("redis://redis:")
        assert env["OMNIMEDIA_DATABASE_URL"].startswith("postgresql://") and env["OMNIMEDIA_STORAGE_BACKEND"] == "s3"
        (device,) = service["deploy"]["resources"]["reservations"]["devices"]
        assert device["capabilities"] == ["gpu"] and device["driver"] == "nvidia"
        device_ids += device["device_ids"]
        assert service["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert sorted(device_ids) == ["0", "1"], "one worker service per GPU"
    (vllm_device,) = services["worker-vllm"]["deploy"]["resources"]["reservations"]["devices"]
    assert vllm_device["device_ids"] == ["${VLLM_GPU:-2}"], "by default vLLM takes no GPU another worker holds"
    assert "--queues" in services["worker-gpu1"]["command"] and "talker" in services["worker-gpu1"]["command"]
    queues_of = {
        name: s["command"][s["command"].index("--queues") + 1]
        for name, s in services.items()
        if isinstance(s.get("command"), list) and "--queues" in s["command"]
    }
    (webhook_service,) = [name for name, queues in queues_of.items() if "webhooks" in queues.split(",")]
    assert "deploy" not in services[webhook_service], "webhook delivery never runs on a GPU worker"
    assert all("webhooks" not in queues_of[name] for name in ("worker-gpu0", "worker-gpu1"))
    for dockerfile in ("Dockerfile", "Dockerfile.cuda", "Dockerfile.vllm"):
        text = (REPO / "infra" / dockerfile).read_text()
        assert text.startswith("#") and "FROM " in text and "COPY models models" in text and "COPY cli cli" in text
    s3_config = compose["configs"]["s3-identities"]["content"]
    assert "${S3_ACCESS_KEY:?" in s3_config and "${S3_SECRET_KEY:?" in s3_config
    scrape = yaml.safe_load((REPO / "infra" / "prometheus.yml").read_text())
    targets = {t for job in scrape["scrape_configs"] for c in job["static_configs"] for t in c["targets"]}
    assert {"api:8000", "worker-gpu0:9100", "worker-gpu1:9100"} <= targets
    (api_job,) = [job for job in scrape["scrape_configs"] if job["job_name"] == "omnimedia-api"]
    assert api_job["authorization"]["credentials_file"] == "/etc/prometheus/admin-token"


def test_no_default_secrets_in_deployment_files() -> None:
    """Every secret compose uses is required from the environment (`${VAR:?...}`): none has a default, none is
    written in the repository, and Flower's password is passed by environment, never on a command line."""
    import re

    text = (REPO / "docker-compose.yml").read_text()
    names = (
        "POSTGRES_PASSWORD",
        "S3_ACCESS_KEY",
        "S3_SECRET_KEY",
        "OMNIMEDIA_ADMIN_TOKEN",
        "OMNIMEDIA_SECRET_KEY",
        "FLOWER_PASSWORD",
    )
    for name in names:
        uses = re.findall(r"\$\{" + name + r"([^}]*)\}", text)
        assert uses and all(use.startswith(":?") for use in uses), (name, uses)
    compose = yaml.safe_load(text)
    flower_env = compose["services"]["flower"]["environment"]
    assert set(flower_env) == {"OMNIMEDIA_MODE", "OMNIMEDIA_BROKER_URL", "FLOWER_BASIC_AUTH"}, "the broker URL only"
    assert all("basic-auth" not in " ".join(s.get("command", [])) for s in compose["services"].values())
    assert "FLOWER_BASIC_AUTH" in compose["services"]["flower"]["environment"]
    for path in (REPO / "infra").iterdir():
        assert "change-me" not in path.read_text(errors="replace"), path


def test_every_long_running_service_restarts_and_redis_keeps_its_queue() -> None:
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    services = compose["services"]
    for name, service in services.items():
        expected = "no" if name == "migrate" else "unless-stopped"
        restart = service.get("restart") or compose.get("x-worker", {}).get("restart")
        assert restart == expected, name
    assert services["redis"]["command"][-4:] == ["--appendonly", "yes", "--appendfsync", "everysec"]
    assert "--appendonly yes --appendfsync everysec" in (REPO / "infra" / "services.sh").read_text()


def test_gpu_images_start_and_the_vllm_profile_runs_a_vllm_worker() -> None:
    """Images on pinned bases with the interpreter requires-python allows; beat writes its schedule where the
    service user may; workers wait for S3; the vllm profile's worker runs the vLLM image in the threads pool with
    the host's IPC namespace and a GPU."""
    import tomllib

    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    services = compose["services"]
    for dockerfile in ("Dockerfile", "Dockerfile.cuda", "Dockerfile.vllm"):
        text = (REPO / "infra" / dockerfile).read_text()
        base = next(line.split()[1] for line in text.splitlines() if line.startswith("FROM "))
        assert ":" in base and not base.endswith(":latest"), base
        assert "OMNIMEDIA_DATA_DIR=/var/lib/omnimedia" in text and "apt-get" not in text
    cuda = (REPO / "infra" / "Dockerfile.cuda").read_text()
    requires = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["requires-python"]
    assert "python:3.11" in cuda and ">=3.11" in requires and "<3.13" in requires  # 3.12: the vLLM image's Python
    vllm_image = (REPO / "infra" / "Dockerfile.vllm").read_text()
    assert "--requirement infra/requirements-vllm.txt" in vllm_image and "--no-deps" in vllm_image
    assert 'CMD ["omnimedia"' in vllm_image and "ENTRYPOINT []" in vllm_image
    maintenance = services["maintenance"]["command"]
    assert "--beat" in maintenance and not any(
        "beat" in (s.get("command") or [])[:4] for s in services.values() if s is not services["maintenance"]
    )
    assert services["s3"]["healthcheck"]["test"][-1].endswith("/healthz")
    for name in ("worker-gpu0", "worker-gpu1", "worker-vllm"):
        assert services[name]["depends_on"]["s3"]["condition"] == "service_healthy", name
    vllm = services["worker-vllm"]
    assert (
        vllm["profiles"] == ["vllm"]
        and vllm["ipc"] == "host"
        and vllm["build"]["dockerfile"] == "infra/Dockerfile.vllm"
    )
    assert vllm["environment"]["OMNIMEDIA_BACKEND"] == "vllm" and "threads" in vllm["command"]
    assert vllm["deploy"]["resources"]["reservations"]["devices"][0]["capabilities"] == ["gpu"]


def test_the_vllm_image_installs_every_dependency_but_vllms_own_and_the_apis() -> None:
    """infra/requirements-vllm.txt is the project's dependencies at versions its ranges allow, less what vLLM pins
    for itself (torch, transformers, ...) and what only the API imports (the worker image serves no HTTP; vLLM
    pins its own FastAPI): a dependency added to pyproject.toml and forgotten there fails here."""
    import tomllib

    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    declared = {
        canonicalize_name(r.name): r
        for r in map(Requirement, tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"])
    }
    pinned = {
        canonicalize_name(r.name): r
        for line in (REPO / "infra/requirements-vllm.txt").read_text().splitlines()
        if line.strip() and not line.startswith("#")
        for r in [Requirement(line)]
    }
    from_vllm = {"torch", "torchvision", "transformers", "tokenizers", "accelerate", "numpy", "pillow", "pydantic"}
    api_only = {"fastapi", "uvicorn", "httptools", "uvloop", "python-multipart", "fastapi-offline"}
    assert set(pinned) == set(declared) - from_vllm - api_only
    for name, requirement in pinned.items():
        (spec,) = requirement.specifier
        assert spec.operator == "==", f"{name} is pinned"
        assert declared[name].specifier.contains(spec.version), f"{name} {spec.version} is outside pyproject's range"
