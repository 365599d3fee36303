"""The Builder's canvas app (ui/canvas): its built bundle is committed and matches the
source it was built from, the front-end unit tests (Vitest) pass, the bundle ships as
package data, and the Builder page hands the component the API server's URL and key."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
from importlib import resources
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from flowloom.ui.app.canvas import DIST

CANVAS = Path(__file__).resolve().parents[2] / "ui" / "canvas"
# what scripts/build-info.mjs hashes (keep the two in step)
BUILD_FILES = ["index.html", "package.json", "package-lock.json", "tsconfig.json",
               "vite.config.ts"]


def source_files() -> list[str]:
    src = [p for p in (CANVAS / "src").rglob("*")
           if p.is_file() and not p.name.endswith(".test.ts")]
    rels = [*BUILD_FILES, *(p.relative_to(CANVAS).as_posix() for p in src)]
    return sorted(rels)


def source_hash() -> str:
    h = hashlib.sha256()
    for rel in source_files():
        data = (CANVAS / rel).read_bytes().replace(b"\r\n", b"\n")
        h.update(f"{rel}\n{len(data)}\n".encode())
        h.update(data)
    return h.hexdigest()


def test_the_committed_bundle_was_built_from_the_current_source():
    info = json.loads((DIST / "build-info.json").read_text())
    assert info["source_sha256"] == source_hash(), (
        "ui/canvas/src changed since the bundle was built: run `npm ci && npm run build` in "
        "ui/canvas and commit ui/canvas/dist")
    assert info["files"] == len(source_files())


def test_the_bundle_loads_under_the_components_url():
    html = (DIST / "index.html").read_text()
    assets = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert assets, html
    for asset in assets:
        assert asset.startswith("./"), f"{asset}: asset URLs must be relative (vite base './')"
        assert (DIST / asset).is_file(), asset


def test_the_bundle_is_package_data():
    dist = resources.files("flowloom.ui") / "canvas" / "dist"
    assert (dist / "index.html").is_file()
    pyproject = (CANVAS.parents[1] / "pyproject.toml").read_text()
    assert '"flowloom.ui" = ["canvas/dist/*", "canvas/dist/**/*"]' in pyproject
    assert "streamlit-flow-component" not in pyproject


@pytest.mark.skipif(shutil.which("npm") is None, reason="needs Node.js and npm")
def test_front_end_unit_tests_pass():
    """`npm ci` from the lock file, the type check, then Vitest (the document model)."""
    def npm(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["npm", *args], cwd=CANVAS, capture_output=True, text=True,
                              timeout=timeout)

    installed = npm("ci", "--no-audit", "--no-fund")
    assert installed.returncode == 0, installed.stderr[-3000:]
    typed = npm("run", "typecheck")
    assert typed.returncode == 0, typed.stdout[-3000:] + typed.stderr[-3000:]
    tested = subprocess.run(["npx", "vitest", "run"], cwd=CANVAS, capture_output=True, text=True,
                            timeout=600)
    assert tested.returncode == 0, tested.stdout[-5000:] + tested.stderr[-2000:]
    assert re.search(r"Tests\s+\d+ passed", re.sub(r"\x1b\[[0-9;]*m", "", tested.stdout))


def builder_app() -> None:
    from flowloom.ui.app import builder

    builder.page()


def _canvas_args(at: AppTest) -> dict:
    found = [e for e in at.main if e.type == "component_instance"]
    assert len(found) == 1, [e.type for e in at.main]
    return json.loads(found[0].proto.json_args)


def test_the_builder_page_gives_the_canvas_the_server_and_key(ui_api, monkeypatch):
    monkeypatch.setenv("FLOWLOOM_API_KEY", "k-123")
    at = AppTest.from_function(builder_app, default_timeout=30)
    at.query_params["flow"] = "rag_chat"
    at.run()
    assert not at.exception, at.exception
    args = _canvas_args(at)
    assert args["api_url"] == ui_api.base_url
    assert args["api_key"] == "k-123"
    assert args["flow_id"] == "rag_chat"
    monkeypatch.delenv("FLOWLOOM_API_KEY")
    at = AppTest.from_function(builder_app, default_timeout=30)
    at.run()
    args = _canvas_args(at)
    assert args["api_key"] is None and args["flow_id"] is None
