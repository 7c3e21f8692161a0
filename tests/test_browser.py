"""End to end in a real browser: a lesson, Run All, move a slider, see the plot change.

Starts JupyterLab on 127.0.0.1 (random port and token, a temporary root and
config dirs) with this Python, opens a copy of the lesson that holds an
explorer, runs all cells from the Run menu, finds the explorer's slider,
drags it as a learner would, and checks that the plot
image was replaced by a different picture. In JupyterLab, and in Notebook 7
when it is installed (same server). Debian's Chromium driven by
Python playwright (``executable_path``; no browser download).

Skipped, with the reason, when Chromium or playwright is missing.
Screenshots go to $BROWSER_TEST_SCREENSHOTS (default: the pytest tmp dir).
"""
from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = next((p for p in ("/usr/bin/chromium", shutil.which("chromium") or "",
                             shutil.which("chromium-browser") or "") if p and os.path.exists(p)),
                None)
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run",
                 "--disable-quic", "--disable-dev-shm-usage"]

# Which explorer to drive, in order of preference (the fastest lesson first).
EXPLORERS = ["graph_explorer(", "learning_rate_explorer(", "depth_explorer("]

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def _skip_reason() -> str | None:
    if CHROMIUM is None:
        return ("no Chromium browser found (/usr/bin/chromium); install it with "
                "`apt-get install chromium` to run the browser test")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return ("Python playwright is not installed (pip install playwright; "
                "never `playwright install`: the test uses the system Chromium)")
    return None


if _skip_reason():
    pytest.skip(_skip_reason(), allow_module_level=True)

from playwright.sync_api import TimeoutError as PlaywrightTimeout  # noqa: E402
from playwright.sync_api import sync_playwright  # noqa: E402
from ports import free_port  # noqa: E402


def _lesson_with_explorer() -> tuple[Path, str]:
    """The lesson notebook to drive and the explorer it shows."""
    for explorer in EXPLORERS:
        for path in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")):
            cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
            if any(c["cell_type"] == "code" and explorer in "".join(c["source"])
                   for c in cells):
                return path, explorer.rstrip("(")
    pytest.fail("no lesson in notebooks/ shows an explorer (graph_explorer, "
                "learning_rate_explorer or depth_explorer)")


def _copy_without_outputs(source: Path, target: Path) -> None:
    """The lesson as if never run: no outputs, no [n] prompts, no widget state.

    Stored outputs would show [1] ... before anything ran, so Run All could not
    be told from a click that reached no kernel, and a stored explorer could
    pass for a new one."""
    nb = json.loads(source.read_text(encoding="utf-8"))
    for cell in nb["cells"]:
        if cell["cell_type"] == "code":
            cell["outputs"], cell["execution_count"] = [], None
    nb["metadata"].pop("widgets", None)
    target.write_text(json.dumps(nb, indent=1), encoding="utf-8")


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """A JupyterLab server on 127.0.0.1 serving a copy of the lesson."""
    notebook, explorer = _lesson_with_explorer()
    root = tmp_path_factory.mktemp("lab")
    _copy_without_outputs(notebook, root / notebook.name)
    home = tmp_path_factory.mktemp("jupyter-home")
    port, token = free_port(), secrets.token_hex(16)
    env = dict(os.environ,
               JUPYTER_CONFIG_DIR=str(home / "config"),
               JUPYTER_RUNTIME_DIR=str(home / "runtime"),
               JUPYTERLAB_SETTINGS_DIR=str(home / "settings"),
               JUPYTERLAB_WORKSPACES_DIR=str(home / "workspaces"),
               IPYTHONDIR=str(home / "ipython"),
               OPENBLAS_NUM_THREADS="1")
    # A fresh environment compiles the kernel's imports on first use; do it now,
    # so the first kernel does not start slowly enough to race JupyterLab's
    # session handshake (seen once in a fresh clone: Run All never showed output).
    subprocess.run([sys.executable, "-c", "import ipykernel.kernelapp, ipywidgets, "
                    "matplotlib.pyplot, backprop_course.widgets"], env=env, timeout=300,
                   check=True)
    log = open(root.parent / f"jupyterlab-{port}.log", "w")
    server = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--no-browser",
         "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}",
         "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}",
         f"--ServerApp.root_dir={root}", "--LabApp.news_url=",
         "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
         "--LabApp.extension_manager=readonly"]
        + (["--allow-root"] if hasattr(os, "geteuid") and os.geteuid() == 0 else []),
        cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT,
        start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            if server.poll() is not None:
                pytest.fail(f"JupyterLab exited with {server.returncode}; log: {log.name}")
            try:
                with urllib.request.urlopen(f"{base}/api/status?token={token}",
                                            timeout=2) as reply:
                    if reply.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"JupyterLab did not answer within 90 s; log: {log.name}")
            time.sleep(0.5)
        yield {"urls": {"jupyterlab": f"{base}/lab/tree/{notebook.name}?token={token}",
                        "notebook7": f"{base}/notebooks/{notebook.name}?token={token}"},
               "notebook": notebook.name, "explorer": explorer, "log": log.name}
    finally:
        _stop(server)
        log.close()


def _stop(server: subprocess.Popen) -> None:
    """Stop the server and the kernels it started (its own process group)."""
    for sig, wait in ((signal.SIGTERM, 20), (signal.SIGKILL, 10)):
        try:
            os.killpg(server.pid, sig)
        except ProcessLookupError:
            return
        try:
            server.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def _screenshot_dir(tmp_path: Path) -> Path:
    target = Path(os.environ.get("BROWSER_TEST_SCREENSHOTS", tmp_path))
    target.mkdir(parents=True, exist_ok=True)
    return target


def _notebook7_missing() -> bool:
    try:
        import notebook
    except ImportError:
        return True
    return int(notebook.__version__.split(".")[0]) < 7


@pytest.mark.parametrize("front_end", [
    "jupyterlab",
    pytest.param("notebook7", marks=pytest.mark.skipif(
        _notebook7_missing(), reason="Notebook 7 is not installed (pip install "
                                     "'notebook>=7' to test it too)")),
])
def test_run_all_then_move_a_slider_redraws_the_plot(lab, tmp_path, front_end):
    shots = _screenshot_dir(tmp_path)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(60_000)
            page.goto(lab["urls"][front_end])
            # the notebook is open when its first cell editor is there
            page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=120_000)
            # Run All before the kernel is connected would run nothing
            page.wait_for_selector('.jp-Notebook-ExecutionIndicator[data-status="idle"]',
                                   timeout=120_000)
            _run_all(page)

            explorer = page.locator(".backprop-course-explorer").first
            try:
                explorer.wait_for(state="visible", timeout=90_000)
            except PlaywrightTimeout:
                # once: the page's first kernel connection can fail on a fresh
                # server (jupyter_server issue 1265, a 500 on the websocket), and
                # widgets then never render; reload as a learner would, run again
                page.screenshot(path=str(shots / f"browser_{front_end}_no_output.png"))
                page.reload()
                page.wait_for_selector('.jp-Notebook-ExecutionIndicator'
                                       '[data-status="idle"]', timeout=120_000)
                _restart_and_run_all(page)
                explorer.wait_for(state="visible", timeout=120_000)
            image = explorer.locator("img").first
            image.wait_for(state="visible", timeout=60_000)
            _wait_until_idle(page)
            explorer.scroll_into_view_if_needed()
            page.screenshot(path=str(shots / f"browser_{front_end}_before.png"))
            src_before = image.get_attribute("src")
            pixels_before = image.screenshot()

            readout = explorer.locator(".widget-readout").first
            value_before = readout.inner_text()
            handle = explorer.locator(".widget-slider .noUi-handle").first
            _move_slider(page, handle, readout, value_before)
            page.wait_for_function(
                "([img, old]) => img.getAttribute('src') !== old",
                arg=[image.element_handle(), src_before], timeout=60_000)
            _wait_until_idle(page)
            value_after = readout.inner_text()
            pixels_after = image.screenshot()
            page.screenshot(path=str(shots / f"browser_{front_end}_after.png"))

            assert value_after != value_before, "the slider did not move"
            assert pixels_after != pixels_before, "the plot looks the same after the move"
            errors = page.locator(".jp-OutputArea-output[data-mime-type="
                                  "'application/vnd.jupyter.stderr'] pre")
            tracebacks = [t for t in errors.all_inner_texts() if "Traceback" in t]
            assert not tracebacks, f"a cell failed during Run All: {tracebacks[0][:500]}"
        finally:
            browser.close()


def _move_slider(page, handle, readout, value_before: str) -> None:
    """Drag the handle as a learner does; if that did nothing, use the arrow keys."""
    handle.scroll_into_view_if_needed()
    box = handle.bounding_box()
    track = handle.locator("xpath=ancestor::*[contains(@class,'noUi-target')][1]")
    right_end = (track.bounding_box() or box)
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    dx = 25 if x + 30 < right_end["x"] + right_end["width"] else -25
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x + dx, y, steps=5)
    page.mouse.up()
    try:
        page.wait_for_function("([el, old]) => el.innerText !== old",
                               arg=[readout.element_handle(), value_before],
                               timeout=5_000)
        return
    except PlaywrightTimeout:
        pass
    handle.focus()
    for _ in range(3):
        handle.press("ArrowRight")


def _run_all(page) -> None:
    """Run > Run All Cells, from the menu bar as a learner does; check it started."""
    for _ in range(3):
        page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
        page.locator(".lm-Menu-itemLabel", has_text="Run All Cells").first.click()
        # a kernel chooser appears only if the notebook's kernel is unknown
        select = page.locator(".jp-Dialog button.jp-mod-accept")
        if select.count():
            select.first.click()
        try:   # the first code cell gets [*] or [1]
            page.wait_for_function(
                "() => [...document.querySelectorAll('.jp-CodeCell .jp-InputPrompt')]"
                ".some(p => /\\[(\\*|\\d+)\\]/.test(p.textContent))", timeout=30_000)
            return
        except PlaywrightTimeout:
            continue
    raise AssertionError("Run > Run All Cells did not start the cells")


def _restart_and_run_all(page) -> None:
    """Kernel > Restart Kernel and Run All Cells, confirming the dialog."""
    page.locator(".lm-MenuBar-itemLabel", has_text="Kernel").first.click()
    page.locator(".lm-Menu-itemLabel",
                 has_text="Restart Kernel and Run All Cells").first.click()
    page.locator(".jp-Dialog button.jp-mod-accept").first.click()


def _wait_until_idle(page, timeout_s: float = 120) -> None:
    """Until no cell shows [*] (queued or running)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        busy = page.evaluate(
            "() => [...document.querySelectorAll('.jp-InputPrompt')]"
            ".some(p => p.textContent.includes('*'))")
        if not busy:
            return
        time.sleep(0.5)
    raise AssertionError(f"cells still running after {timeout_s:.0f} s")
