"""Headless Chromium driven over the DevTools protocol (no Selenium, no Playwright).

Debian's ``chromium`` package (``scripts/dev setup`` installs it when missing, as root) is
started with ``--remote-debugging-port=0``; the port it chose is read from the
``DevToolsActivePort`` file of its profile directory, and one page target is driven through
a WebSocket (the ``websockets`` package, a Prefect dependency). Every wait polls a
condition in the page until a deadline.
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any, Self

from websockets.sync.client import ClientConnection, connect

__all__ = ["Chromium", "chromium_path"]


def chromium_path() -> str | None:
    """The Chromium executable, if installed."""
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


class Chromium:
    """One headless Chromium with one page; close it with :meth:`close` (or ``with``)."""

    def __init__(self, profile: Path, width: int = 1440, height: int = 1100) -> None:
        exe = chromium_path()
        if exe is None:
            raise RuntimeError(
                "chromium is not installed: run `bash scripts/dev setup` as root, or "
                "`apt-get install chromium`"
            )
        profile.mkdir(parents=True, exist_ok=True)
        (profile / "DevToolsActivePort").unlink(missing_ok=True)  # a previous run's port
        self.log = profile / "chromium.log"
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen(
                [
                    exe,
                    "--headless=new",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-dev-shm-usage",
                    "--no-first-run",
                    "--no-default-browser-check",
                    "--hide-scrollbars",
                    f"--window-size={width},{height}",
                    f"--user-data-dir={profile}",
                    "--remote-debugging-address=127.0.0.1",
                    "--remote-debugging-port=0",
                    "about:blank",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self._next_id = 0
        try:
            port = self._wait_for_port(profile / "DevToolsActivePort", timeout=60)
            self.ws: ClientConnection = connect(self._page_url(port), max_size=None)
            self.send("Page.enable")
            self.send("Runtime.enable")
        except BaseException:
            self.close()
            raise

    def _wait_for_port(self, path: Path, timeout: float) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"chromium exited: {self.log.read_text(errors='replace')}")
            if path.exists():
                first = path.read_text().splitlines()[:1]
                if first and first[0].isdigit():
                    return int(first[0])
            time.sleep(0.1)
        raise TimeoutError("chromium did not open its DevTools port")

    @staticmethod
    def _page_url(port: int) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=30) as r:
            targets = json.loads(r.read())
        pages = [t for t in targets if t.get("type") == "page"]
        return str(pages[0]["webSocketDebuggerUrl"])

    def send(self, method: str, **params: Any) -> dict[str, Any]:
        """Call a DevTools method; return its result (events arriving meanwhile are dropped)."""
        self._next_id += 1
        call_id = self._next_id
        self.ws.send(json.dumps({"id": call_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.ws.recv(timeout=60))
            if message.get("id") == call_id:
                if "error" in message:
                    raise RuntimeError(f"{method} failed: {message['error']}")
                return dict(message.get("result", {}))

    def evaluate(self, expression: str) -> Any:
        result = self.send(
            "Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True
        )
        if "exceptionDetails" in result:
            raise RuntimeError(f"script failed: {result['exceptionDetails']}")
        return result["result"].get("value")

    def goto(self, url: str) -> None:
        self.send("Page.navigate", url=url)

    def text(self) -> str:
        """The page's visible text."""
        return str(self.evaluate("document.body ? document.body.innerText : ''") or "")

    def wait_for_text(self, *needles: str, timeout: float = 60) -> str:
        """Wait until every needle is in the page's visible text; return that text."""
        deadline = time.monotonic() + timeout
        text = ""
        while time.monotonic() < deadline:
            text = self.text()
            if all(n in text for n in needles):
                return text
            time.sleep(0.25)
        missing = [n for n in needles if n not in text]
        raise TimeoutError(f"page never showed {missing}; it shows:\n{text[:3000]}")

    def click_text(self, label: str, timeout: float = 30) -> None:
        """Click the innermost element whose text is exactly ``label`` (a tab, a link)."""
        script = f"""(() => {{
            const want = {json.dumps(label)};
            const all = [...document.querySelectorAll('button, a, [role=tab], li, span, div')];
            const hits = all.filter(e => e.innerText && e.innerText.trim() === want);
            const inner = hits.filter(e => !hits.some(o => o !== e && e.contains(o)));
            if (!inner.length) return false;
            inner[0].click();
            return true;
        }})()"""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.evaluate(script):
                return
            time.sleep(0.25)
        raise TimeoutError(
            f"nothing labelled {label!r} to click; the page shows:\n{self.text()[:2000]}"
        )

    def screenshot(self, path: Path) -> Path:
        """Save a PNG of the page as it is now."""
        data = self.send("Page.captureScreenshot", format="png", captureBeyondViewport=False)
        path.write_bytes(base64.b64decode(data["data"]))
        return path

    def close(self) -> None:
        ws = getattr(self, "ws", None)
        if ws is not None:
            ws.close()
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=15)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
