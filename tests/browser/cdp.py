"""Headless Chromium driven over the DevTools protocol on a pipe (--remote-debugging-pipe): no driver, no
websocket library, no browser download. Chromium reads commands on fd 3 and writes answers and events on
fd 4, each message JSON ending with a NUL byte.
"""

import base64
import json
import os
import shutil
import subprocess
import tempfile
import threading
import time

CHROMIUM = os.environ.get("SFDC_CHROMIUM", "/usr/bin/chromium")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--disable-extensions", "--disable-default-apps", "--mute-audio",
         "--hide-scrollbars", "--remote-debugging-pipe"]


class CdpError(Exception):
    pass


class Browser:
    """One Chromium process with a fresh profile; `page()` opens a tab."""

    def __init__(self, executable=CHROMIUM, timeout=30.0):
        if not os.path.isfile(executable) or not os.access(executable, os.X_OK):
            raise CdpError("no Chromium at %s: install Debian's package (apt-get install chromium) or set "
                           "SFDC_CHROMIUM to a Chromium binary" % executable)
        self.timeout = timeout
        self.profile = tempfile.mkdtemp(prefix="sfdc-eca-chromium-")
        cmd_r, self._cmd_w = os.pipe()
        self._out_r, out_w = os.pipe()

        def child_fds():
            # move the pipe ends to 3 and 4 (via high numbers, in case they already sit on 3 or 4)
            a, b = os.dup(cmd_r), os.dup(out_w)
            os.dup2(a, 3)
            os.dup2(b, 4)

        self._log = open(os.path.join(self.profile, "chromium.log"), "wb")
        self.proc = subprocess.Popen([executable] + FLAGS + ["--user-data-dir=" + self.profile, "about:blank"],
                                     stdin=subprocess.DEVNULL, stdout=self._log, stderr=self._log,
                                     pass_fds=(3, 4), preexec_fn=child_fds, start_new_session=True)
        os.close(cmd_r)
        os.close(out_w)
        self._lock = threading.Lock()
        self._next = 0
        self._waiting = {}
        self._events = []
        self._cond = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.version = self.call("Browser.getVersion")

    # -- transport ---------------------------------------------------------------------------
    def _read(self):
        buf = b""
        while True:
            try:
                data = os.read(self._out_r, 1 << 20)
            except OSError:
                data = b""
            if not data:
                with self._cond:
                    self._closed = True
                    self._cond.notify_all()
                return
            buf += data
            while b"\0" in buf:
                raw, buf = buf.split(b"\0", 1)
                msg = json.loads(raw)
                with self._cond:
                    if "id" in msg:
                        self._waiting[msg["id"]] = msg
                    else:
                        self._events.append(msg)
                    self._cond.notify_all()

    _closed = False

    def call(self, method, params=None, session=None, timeout=None):
        with self._lock:
            self._next += 1
            mid = self._next
        msg = {"id": mid, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        data = json.dumps(msg).encode() + b"\0"
        os.write(self._cmd_w, data)
        deadline = time.monotonic() + (timeout or self.timeout)
        with self._cond:
            while mid not in self._waiting:
                if self._closed:
                    raise CdpError("Chromium closed the pipe during %s" % method)
                left = deadline - time.monotonic()
                if left <= 0:
                    raise CdpError("no answer to %s within %.0f s" % (method, timeout or self.timeout))
                self._cond.wait(left)
            reply = self._waiting.pop(mid)
        if "error" in reply:
            raise CdpError("%s: %s" % (method, reply["error"].get("message")))
        return reply.get("result", {})

    def events(self, method=None, session=None):
        with self._cond:
            return [e for e in self._events if (method is None or e.get("method") == method)
                    and (session is None or e.get("sessionId") == session)]

    def wait_event(self, method, session=None, since=0, timeout=None):
        deadline = time.monotonic() + (timeout or self.timeout)
        with self._cond:
            while True:
                for e in self._events[since:]:
                    if e.get("method") == method and (session is None or e.get("sessionId") == session):
                        return e
                left = deadline - time.monotonic()
                if left <= 0 or self._closed:
                    raise CdpError("no %s event within %.0f s" % (method, timeout or self.timeout))
                self._cond.wait(left)

    def event_count(self):
        with self._cond:
            return len(self._events)

    # -- pages -------------------------------------------------------------------------------
    def page(self, width=1440, height=1000):
        target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        return Page(self, target, session, width, height)

    def close(self):
        try:
            if self.proc.poll() is None:
                try:
                    self.call("Browser.close", timeout=5)
                except CdpError:
                    pass
                try:
                    self.proc.wait(10)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()
        finally:
            for fd in (self._cmd_w, self._out_r):
                try:
                    os.close(fd)
                except OSError:
                    pass
            self._log.close()
            shutil.rmtree(self.profile, ignore_errors=True)


class Page:
    def __init__(self, browser, target, session, width, height):
        self.browser = browser
        self.target = target
        self.session = session
        self.call("Page.enable")
        self.call("Runtime.enable")
        self.call("Network.enable")
        self.call("Emulation.setDeviceMetricsOverride",
                  {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False})

    def call(self, method, params=None, timeout=None):
        return self.browser.call(method, params, self.session, timeout)

    def goto(self, url, timeout=60):
        since = self.browser.event_count()
        result = self.call("Page.navigate", {"url": url}, timeout)
        if result.get("errorText"):
            raise CdpError("navigating to %s: %s" % (url, result["errorText"]))
        self.browser.wait_event("Page.loadEventFired", self.session, since, timeout)

    def js(self, expression, timeout=None):
        """Evaluate in the page (promises awaited) and return the value."""
        result = self.call("Runtime.evaluate", {"expression": expression, "returnByValue": True,
                                                "awaitPromise": True}, timeout)
        if result.get("exceptionDetails"):
            details = result["exceptionDetails"]
            text = (details.get("exception") or {}).get("description") or details.get("text")
            raise CdpError("script error: %s" % text)
        return result.get("result", {}).get("value")

    def wait_for(self, expression, timeout=30.0):
        deadline = time.monotonic() + timeout
        while True:
            value = self.js(expression)
            if value:
                return value
            if time.monotonic() > deadline:
                raise CdpError("%s stayed false for %.0f s" % (expression, timeout))
            time.sleep(0.02)

    def requests(self):
        """URLs the page asked for (Network.requestWillBeSent), in order."""
        return [e["params"]["request"]["url"] for e in self.browser.events("Network.requestWillBeSent", self.session)]

    # -- input: real key and mouse events ----------------------------------------------------------
    def type(self, text):
        for ch in text:
            self.call("Input.dispatchKeyEvent", {"type": "keyDown", "text": ch, "key": ch, "unmodifiedText": ch})
            self.call("Input.dispatchKeyEvent", {"type": "keyUp", "key": ch})

    def press(self, key, code=None, keycode=None):
        codes = {"Enter": 13, "Escape": 27, "Backspace": 8}
        params = {"key": key, "code": code or key, "windowsVirtualKeyCode": keycode or codes.get(key, 0)}
        self.call("Input.dispatchKeyEvent", dict(params, type="rawKeyDown"))
        self.call("Input.dispatchKeyEvent", dict(params, type="keyUp"))

    def click(self, selector):
        """A real mouse click at the centre of the first element matching selector (scrolled into view)."""
        box = self.js("(function(){var e=document.querySelector(%s); if(!e) return null; e.scrollIntoView({block:"
                      "'center'}); var r=e.getBoundingClientRect(); return [r.left+r.width/2, r.top+r.height/2];})()"
                      % json.dumps(selector))
        if not box:
            raise CdpError("nothing matches %s" % selector)
        self.click_at(*box)

    def click_at(self, x, y):
        for kind in ("mouseMoved", "mousePressed", "mouseReleased"):
            self.call("Input.dispatchMouseEvent", {"type": kind, "x": x, "y": y, "button": "left", "clickCount": 1})

    def screenshot(self, path, full_page=False):
        params = {"format": "png"}
        if full_page:
            metrics = self.call("Page.getLayoutMetrics")
            size = metrics.get("cssContentSize") or metrics["contentSize"]
            params["clip"] = {"x": 0, "y": 0, "width": size["width"], "height": min(size["height"], 6000), "scale": 1}
            params["captureBeyondViewport"] = True
        data = self.call("Page.captureScreenshot", params, timeout=60)["data"]
        with open(path, "wb") as f:
            f.write(base64.b64decode(data))
        return path
