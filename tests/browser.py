"""Load a page in a real headless Chromium through the DevTools protocol (a small client).

Used by tests/test_ops_report.py to check that the HTML report loads with no console errors,
fetches nothing from the network and draws its charts, and to take its screenshot.  Run it to
refresh the screenshot in the docs::

    python -m tests.browser report.html docs/report.png

Chromium comes from the distribution (``apt-get install chromium``); :func:`find_chromium`
returns ``None`` when there is none, and the tests skip saying so.  The browser runs with a
fresh profile directory, no sandbox (containers run as root), no GPU and every background
network feature off, so the only requests it makes are the page's own.
"""

from __future__ import annotations

import base64
import contextlib
import json
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import websocket

FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--disable-default-apps",
    "--no-first-run",
    "--no-default-browser-check",
    "--hide-scrollbars",
    "--remote-debugging-port=0",
)
#: Bounds on waiting for the browser (generous: the machine may be loaded).  These are
#: deadlines for something to happen, never assertions about how fast it happened.
START_TIMEOUT = 60.0
PAGE_TIMEOUT = 90.0
_LOCAL_SCHEMES = ("file:", "data:", "blob:", "about:", "chrome:", "devtools:")


def find_chromium() -> str | None:
    """The path of a Chromium (or Chrome) binary on PATH, or ``None``."""
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        if path := shutil.which(name):
            return path
    return None


@dataclass
class PageLoad:
    """What loading a page produced."""

    url: str
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    network: list[str] = field(default_factory=list)
    found: int = 0
    probe: Any = None
    screenshot: bytes = b""


class _Session:
    """One DevTools websocket: commands with ids, events kept for later."""

    def __init__(self, ws_url: str) -> None:
        self.ws = websocket.create_connection(ws_url, timeout=PAGE_TIMEOUT, suppress_origin=True)
        self.next_id = 0
        self.events: list[dict[str, Any]] = []

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        self.next_id += 1
        ident = self.next_id
        self.ws.send(json.dumps({"id": ident, "method": method, "params": params}))
        while True:
            message = json.loads(self.ws.recv())
            if message.get("id") == ident:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return dict(message.get("result", {}))
            if "method" in message:
                self.events.append(message)

    def wait_event(self, method: str, deadline: float) -> None:
        if any(e["method"] == method for e in self.events):
            return
        while time.monotonic() < deadline:
            message = json.loads(self.ws.recv())
            if "method" in message:
                self.events.append(message)
                if message["method"] == method:
                    return
        raise TimeoutError(f"no {method} before the deadline")

    def evaluate(self, expression: str, *, await_promise: bool = False) -> Any:
        result = self.call(
            "Runtime.evaluate",
            expression=expression,
            returnByValue=True,
            awaitPromise=await_promise,
        )
        return result.get("result", {}).get("value")

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.ws.close()


@contextlib.contextmanager
def _browser(binary: str) -> Iterator[str]:
    """Start Chromium with a fresh profile; yield its DevTools HTTP address."""
    profile = tempfile.mkdtemp(prefix="jobtrack-chromium-")
    proc = subprocess.Popen(
        [binary, *FLAGS, f"--user-data-dir={profile}", "about:blank"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        port_file = Path(profile) / "DevToolsActivePort"
        deadline = time.monotonic() + START_TIMEOUT
        while not port_file.exists() or not port_file.read_text().strip():
            if proc.poll() is not None:
                raise RuntimeError(f"{binary} exited with {proc.returncode} before DevTools opened")
            if time.monotonic() > deadline:
                raise TimeoutError(f"{binary} did not open DevTools in {START_TIMEOUT:.0f} s")
            time.sleep(0.05)
        port = port_file.read_text().split()[0]
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(profile, ignore_errors=True)


def _page_ws(devtools: str) -> str:
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        with urllib.request.urlopen(f"{devtools}/json/list", timeout=10) as resp:
            targets = json.load(resp)
        pages = [t for t in targets if t.get("type") == "page" and t.get("webSocketDebuggerUrl")]
        if pages:
            return str(pages[0]["webSocketDebuggerUrl"])
        if time.monotonic() > deadline:
            raise TimeoutError("Chromium shows no page target")
        time.sleep(0.05)


def _text_of(args: list[dict[str, Any]]) -> str:
    parts = []
    for arg in args:
        value = arg.get("value", arg.get("description", arg.get("type", "")))
        parts.append(str(value))
    return " ".join(parts)


def load_page(
    path: Path,
    *,
    selector: str = "body",
    expect: int = 1,
    width: int = 1400,
    screenshot: bool = False,
    probe: str | None = None,
    binary: str | None = None,
) -> PageLoad:
    """Open ``path`` in headless Chromium, wait until ``expect`` elements match ``selector``
    (or the deadline), and report console errors and warnings, uncaught exceptions, every
    request to a non-local URL, the value of the JavaScript expression ``probe`` and,
    optionally, a full-page PNG screenshot."""
    binary = binary or find_chromium()
    if binary is None:
        raise RuntimeError("no Chromium on PATH")
    url = path.resolve().as_uri()
    load = PageLoad(url=url)
    with _browser(binary) as devtools:
        session = _Session(_page_ws(devtools))
        try:
            for domain in ("Runtime", "Log", "Network", "Page"):
                session.call(f"{domain}.enable")
            session.call(
                "Emulation.setDeviceMetricsOverride",
                width=width,
                height=900,
                deviceScaleFactor=1,
                mobile=False,
            )
            deadline = time.monotonic() + PAGE_TIMEOUT
            session.call("Page.navigate", url=url)
            session.wait_event("Page.loadEventFired", deadline)
            count_js = f"document.querySelectorAll({json.dumps(selector)}).length"
            while (found := int(session.evaluate(count_js) or 0)) < expect:
                if time.monotonic() > deadline:
                    break
                time.sleep(0.1)
            load.found = found
            # Two animation frames: whatever the charts scheduled has been painted.
            session.evaluate(
                "new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))",
                await_promise=True,
            )
            if probe is not None:
                load.probe = session.evaluate(probe)
            if screenshot:
                height = int(session.evaluate("document.documentElement.scrollHeight") or 900)
                session.call(
                    "Emulation.setDeviceMetricsOverride",
                    width=width,
                    height=height,
                    deviceScaleFactor=1,
                    mobile=False,
                )
                session.evaluate(
                    "new Promise(r => setTimeout(() => requestAnimationFrame(r), 300))",
                    await_promise=True,
                )
                shot = session.call("Page.captureScreenshot", format="png")
                load.screenshot = base64.b64decode(shot["data"])
            session.evaluate("0")  # flush events queued behind the last command
        finally:
            session.close()
    for event in session.events:
        method, params = event["method"], event.get("params", {})
        if method == "Runtime.consoleAPICalled":
            text = f"console.{params.get('type')}: {_text_of(params.get('args', []))}"
            if params.get("type") in ("error", "assert"):
                load.errors.append(text)
            elif params.get("type") == "warning":
                load.warnings.append(text)
        elif method == "Runtime.exceptionThrown":
            details = params.get("exceptionDetails", {})
            exc = details.get("exception", {}).get("description") or details.get("text")
            load.errors.append(f"uncaught: {exc}")
        elif method == "Log.entryAdded":
            entry = params.get("entry", {})
            text = f"log.{entry.get('level')} ({entry.get('source')}): {entry.get('text')}"
            if entry.get("level") == "error":
                load.errors.append(text)
            elif entry.get("level") == "warning":
                load.warnings.append(text)
        elif method == "Network.requestWillBeSent":
            request_url = params.get("request", {}).get("url", "")
            if not request_url.startswith(_LOCAL_SCHEMES):
                load.network.append(request_url)
    return load


def main(argv: list[str]) -> int:
    """``python -m tests.browser PAGE.html OUT.png``: screenshot a page (the docs figure)."""
    if len(argv) != 2:
        sys.stderr.write("usage: python -m tests.browser PAGE.html OUT.png\n")
        return 2
    page, out = Path(argv[0]), Path(argv[1])
    load = load_page(page, selector="body[data-charts=drawn]", expect=1, screenshot=True)
    out.write_bytes(load.screenshot)
    for line in load.errors + load.warnings + load.network:
        sys.stderr.write(line + "\n")
    sys.stderr.write(f"{out}: {len(load.screenshot)} bytes\n")
    return 1 if load.errors or load.network else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
