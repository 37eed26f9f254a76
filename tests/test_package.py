"""`pip install .` ships everything the proxy needs at run time: the wheel is built, installed in a
fresh environment, and `hitl-proxy run` from it serves the review page rendered from its
templates (a wheel without them answers 500 TemplateNotFound) and loads its connector files.

The fresh environment borrows the dependencies of the running one through a .pth file (nothing
is downloaded but setuptools for the isolated build, from the configured index), and runs from a
temporary directory with no PYTHONPATH, so only the installed package can be imported.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import site
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import httpx
import pytest

from tests.e2e.harness import ProxyProcess

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("connectors_schemas", "review_api", "proxy_addon", "hitl_demo")
TOKEN = "package-test-token-0001"
# Files the code reads at run time; each one in the checkout must be in the wheel.
DATA_SUFFIXES = (".html", ".css", ".js", ".svg", ".png", ".ico", ".woff2", ".yaml", ".yml",
                 ".json", ".graphql")


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items()
            if k not in ("PYTHONPATH", "PYTHONHOME") and not k.lower().endswith("_proxy")}


def _source_copy(target: Path) -> Path:
    """The project as pip would see it, copied so the build leaves nothing in the checkout."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in PACKAGES:
        shutil.copytree(ROOT / name, target / name, ignore=ignore)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, target / name)
    return target


def _build_wheel(tmp: Path) -> Path:
    source = _source_copy(tmp / "source")
    # With setuptools at hand the build skips creating an isolated environment (seconds).
    isolation = ["--no-build-isolation"] if importlib.util.find_spec("setuptools") else []
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", *isolation,
         "-w", str(tmp / "dist"), str(source)],
        capture_output=True, text=True, timeout=300, env=_clean_env())
    if built.returncode != 0 and "setuptools" in built.stderr and "No matching" in built.stderr:
        pytest.skip(f"no setuptools reachable for the isolated build: {built.stderr[-300:]}")
    assert built.returncode == 0, built.stderr
    [wheel] = (tmp / "dist").glob("hitl_proxy-*.whl")
    return wheel


def _fresh_env(tmp: Path, wheel: Path) -> Path:
    """A venv holding only the wheel; the dependencies come from this interpreter's sites."""
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True,
                   timeout=120)
    python = venv / "bin" / "python"
    purelib = subprocess.run([str(python), "-c", "import sysconfig; "
                              "print(sysconfig.get_paths()['purelib'])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    # Plain path lines: the sites' own .pth files (an editable install's finder) do not run.
    sites = {sysconfig.get_paths()["purelib"], *site.getsitepackages()}
    Path(purelib, "_hitl_dependencies.pth").write_text(
        "".join(f"{path}\n" for path in sorted(sites) if Path(path).is_dir()))
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install",
                    "--no-deps", "--no-index", "--quiet", str(wheel)], check=True, timeout=300,
                   env=_clean_env())
    return venv


def test_the_installed_wheel_serves_the_review_page(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    wheel = _build_wheel(tmp_path)
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
    shipped = {str(path.relative_to(ROOT)) for name in PACKAGES
               for path in (ROOT / name).rglob("*")
               if path.is_file() and path.suffix in DATA_SUFFIXES}
    assert shipped and shipped <= names, sorted(shipped - names)

    venv = _fresh_env(tmp_path, wheel)
    workdir = tmp_path / "run"
    workdir.mkdir()
    imported = subprocess.run(
        [str(venv / "bin" / "python"), "-c",
         "import connectors_schemas, hitl_demo, proxy_addon, review_api; "
         "print(*review_api.__path__, *proxy_addon.__path__, *connectors_schemas.__path__, "
         "*hitl_demo.__path__)"],
        cwd=workdir, capture_output=True, text=True, timeout=60, env=_clean_env())
    assert imported.returncode == 0, imported.stderr
    paths = imported.stdout.split()
    assert len(paths) == len(PACKAGES), paths  # proxy_addon is a namespace package: one dir
    assert all(Path(path).is_relative_to(venv) for path in paths), paths  # not the checkout
    # HubSpot's description may not be redistributed: the wheel carries only what was derived
    # from it, and the installed connectors still know HubSpot's documented writes.
    assert not any("hubspot-public-api-specs" in name for name in names)
    derived = subprocess.run(
        [str(venv / "bin" / "python"), "-c",
         "from connectors_schemas import Matcher, load_connectors; "
         "found = Matcher(load_connectors()).classify('POST', 'api.hubapi.com', "
         "'/crm/v3/properties/contacts', [], b'{}', 'application/json'); "
         "print(found.object_type if found else None)"],
        cwd=workdir, capture_output=True, text=True, timeout=60, env=_clean_env())
    assert derived.returncode == 0, derived.stderr
    assert derived.stdout.strip() not in ("", "None"), derived.stdout

    (workdir / "hitl.yaml").write_text(f"reviewers: [{{name: pat, token: {TOKEN}}}]\n")
    proxy = ProxyProcess(workdir, ["--config", str(workdir / "hitl.yaml")], token=TOKEN)
    proxy.args[:proxy.args.index("run")] = [str(venv / "bin" / "hitl-proxy")]
    monkeypatch.delenv("PYTHONPATH", raising=False)  # ProxyProcess passes the environment on
    proxy.start()
    try:
        with httpx.Client(base_url=proxy.review_url, timeout=10, trust_env=False) as page:
            login = page.get("/", follow_redirects=True)
            assert login.status_code == 200, login.text
            assert "<form" in login.text and "TemplateNotFound" not in login.text
            assert page.post("/login", data={"token": TOKEN}).status_code == 303
            for path in ("/", "/history"):
                shown = page.get(path)
                assert shown.status_code == 200, (path, shown.text)
                assert "</html>" in shown.text
    finally:
        assert proxy.stop() == 0, proxy.log()
    assert "Traceback" not in proxy.log(), proxy.log()
