"""Headless Chromium driven over the DevTools protocol, for pages that need a click before they show what a
test looks for (the MLflow trace view shows a span's inputs only once the span is selected).

    with Browser() as browser:
        browser.open(url)
        browser.wait_for("document.querySelector('#app') !== null")
        browser.click('[data-testid="x"]')
        text = browser.text()
        browser.screenshot(path)

The protocol runs over a pair of pipes (``--remote-debugging-pipe``: the browser reads commands on its
fd 3 and answers on fd 4, one JSON message per NUL-terminated chunk), so there is no port to find or
race for and nothing beyond the standard library. Chromium runs in its own session with a throwaway
profile and is stopped, profile removed, when the block ends, also on failure.
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import select
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--no-first-run", "--disable-sync", "--hide-scrollbars")


def require_chromium() -> None:
    """Fail, never skip, without Chromium: `make setup` installs it (Debian package ``chromium``)."""
    assert os.access(CHROMIUM, os.X_OK), \
        "chromium is not installed; `make setup` installs it (Debian: apt-get install chromium)"


class BrowserError(AssertionError):
    """The browser answered a command with an error, died, or a wait ran out."""


class Browser:
    """One headless Chromium with one page, ``width`` x ``height`` CSS pixels."""

    def __init__(self, width: int = 1400, height: int = 900, timeout_s: float = 30):
        self.width, self.height, self.timeout_s = width, height, timeout_s
        self._profile = tempfile.mkdtemp(prefix="limi-chromium-")
        self._log = Path(self._profile) / "chromium.log"
        self._next_id = 0
        self._buffer = b""
        self._session: str | None = None
        # the browser's fds 3 and 4: bash moves the pipe ends there and execs it (no code between fork
        # and exec in this process); the ends start at fd 10 or above, so no move overwrites the other end
        to_browser_r, self._to_browser = os.pipe()
        self._from_browser, from_browser_w = os.pipe()
        ends = [fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10) for fd in (to_browser_r, from_browser_w)]
        os.close(to_browser_r)
        os.close(from_browser_w)
        wire = f'exec "$@" 3<&{ends[0]} 4>&{ends[1]} {ends[0]}<&- {ends[1]}>&-'
        try:
            with self._log.open("wb") as log:
                self._proc = subprocess.Popen(
                    ["/bin/bash", "-c", wire, "bash", CHROMIUM, *FLAGS, f"--user-data-dir={self._profile}",
                     "--remote-debugging-pipe", f"--window-size={width},{height}", "about:blank"],
                    stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, pass_fds=ends,
                    start_new_session=True)
        finally:
            for fd in ends:
                os.close(fd)

    # -- the block
    def __enter__(self) -> "Browser":
        try:
            targets = self.command("Target.getTargets")["targetInfos"]
            page = next(t for t in targets if t["type"] == "page")
            self._session = self.command("Target.attachToTarget", targetId=page["targetId"], flatten=True)["sessionId"]
            self.command("Emulation.setDeviceMetricsOverride", width=self.width, height=self.height,
                         deviceScaleFactor=1, mobile=False)
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        for fd in (self._to_browser, self._from_browser):
            try:
                os.close(fd)
            except OSError:
                pass
        if self._proc.poll() is None:
            try:
                os.killpg(self._proc.pid, signal.SIGTERM)
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self._proc.pid, signal.SIGKILL)
                self._proc.wait()
            except ProcessLookupError:
                pass
        shutil.rmtree(self._profile, ignore_errors=True)

    # -- the protocol
    def command(self, method: str, **params: Any) -> dict:
        """Send one DevTools command (to the page once attached) and return its result; events are dropped."""
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params}
        if self._session and not method.startswith("Target."):
            message["sessionId"] = self._session
        os.write(self._to_browser, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + self.timeout_s
        while True:
            reply = self._read(deadline, method)
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise BrowserError(f"{method}: {reply['error']}")
                return reply.get("result", {})

    def _read(self, deadline: float, waiting_for: str) -> dict:
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                raise BrowserError(f"no answer to {waiting_for} in {self.timeout_s:.0f}s")
            ready, _, _ = select.select([self._from_browser], [], [], left)
            if ready:
                chunk = os.read(self._from_browser, 1 << 20)
                if not chunk:
                    raise BrowserError(f"chromium exited ({self._proc.poll()}):\n{self.log()}")
                self._buffer += chunk
        raw, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(raw)

    def log(self, tail: int = 3000) -> str:
        return self._log.read_text(errors="replace")[-tail:] if self._log.exists() else ""

    # -- what tests do with a page
    def open(self, url: str) -> None:
        result = self.command("Page.navigate", url=url)
        if result.get("errorText"):
            raise BrowserError(f"{url}: {result['errorText']}")

    def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page (promises awaited)."""
        result = self.command("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise BrowserError(f"{expression[:200]}: {result['exceptionDetails'].get('exception', {})}")
        return result["result"].get("value")

    def wait_for(self, expression: str, timeout_s: float | None = None, what: str = "") -> Any:
        """Poll ``expression`` until it is truthy; its value. A single-page app renders after the load event."""
        timeout_s = timeout_s or self.timeout_s
        deadline = time.monotonic() + timeout_s
        while True:
            value = self.evaluate(expression)
            if value:
                return value
            if time.monotonic() > deadline:
                raise BrowserError(f"{what or expression[:200]}: not true after {timeout_s:.0f}s; page text:\n"
                                   + str(self.evaluate("document.body ? document.body.innerText : ''"))[:3000])
            time.sleep(0.2)

    def click(self, selector: str) -> bool:
        """Click the first element matching the CSS ``selector``; False when there is none."""
        return bool(self.evaluate(f"(() => {{ const e = document.querySelector({json.dumps(selector)}); "
                                  "if (!e) return false; e.click(); return true; })()"))

    def text(self) -> str:
        """The page's visible text."""
        return self.evaluate("document.body.innerText") or ""

    def dom(self) -> str:
        return self.evaluate("document.documentElement.outerHTML") or ""

    def screenshot(self, path: Path) -> Path:
        """A PNG of the viewport at ``path``."""
        data = self.command("Page.captureScreenshot", format="png")["data"]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(data))
        return path
