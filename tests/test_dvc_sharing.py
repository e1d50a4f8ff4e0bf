"""Team cache sharing through a real S3 endpoint (moto's server on loopback).

One clone runs the feature stages and pushes; a fresh clone pulls and finds
every stage up to date, so `dvc repro` recomputes nothing.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _run(cmd: list[str], cwd: Path, env: dict) -> str:
    result = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, f"{' '.join(cmd)} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout + result.stderr


@pytest.fixture
def s3_endpoint():
    if shutil.which("moto_server", path=str(BIN)) is None:
        pytest.fail("moto_server is not installed; run scripts/setup.sh (moto[server] is a dev dependency)")
    port = _free_port()
    server = subprocess.Popen(
        [str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            time.sleep(0.2)
    else:
        server.kill()
        pytest.fail("moto_server did not start within 30 s")
    yield url
    server.terminate()
    server.wait(timeout=10)


def test_push_then_pull_into_a_fresh_clone_skips_feature_stages(tmp_path, s3_endpoint):
    import boto3

    env = {
        **os.environ,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "PYTHONPATH": str(REPO),
        "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t",
    }  # fmt: skip
    boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1",
                 aws_access_key_id="testing", aws_secret_access_key="testing").create_bucket(Bucket="mosa-cache")  # fmt: skip

    producer = tmp_path / "producer"
    _run(["git", "clone", "-q", str(REPO), str(producer)], tmp_path, env)
    # A tiny dataset keeps the test quick; the mechanism is the same at any size.
    params = (producer / "params.yaml").read_text().replace("videos: 150", "videos: 6", 1)
    (producer / "params.yaml").write_text(params)
    _run(["dvc", "remote", "add", "-d", "team", "s3://mosa-cache/cache"], producer, env)
    _run(["dvc", "remote", "modify", "team", "endpointurl", s3_endpoint], producer, env)
    _run(["dvc", "repro", "index"], producer, env)
    _run(["dvc", "push"], producer, env)
    _run(["git", "add", "-A"], producer, env)
    _run(["git", "commit", "-qm", "features"], producer, env)

    colleague = tmp_path / "colleague"
    _run(["git", "clone", "-q", str(producer), str(colleague)], tmp_path, env)
    assert not (colleague / "features/index/objects.parquet").exists()
    _run(["dvc", "pull", "--with-deps", "index"], colleague, env)
    assert (colleague / "features/index/objects.parquet").is_file()
    status = _run(["dvc", "status", "index"], colleague, env)
    assert "up to date" in status.lower(), status
    repro = _run(["dvc", "repro", "index"], colleague, env)
    assert "Running stage" not in repro, repro
    assert "didn't change, skipping" in repro
