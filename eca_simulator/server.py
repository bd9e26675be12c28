"""A small HTTP/1.1 server: one selector thread for many listening sockets, a worker pool for requests.

Idle keep-alive connections go back to the selector, so they never pin a worker. A listener is bound to
one loopback address and port and may carry its own TLS context (its certificate names its address).
"""

import concurrent.futures
import email.utils
import errno
import queue
import selectors
import socket
import ssl
import struct
import sys
import threading

try:
    import resource
except ImportError:  # not on Windows
    resource = None

MAX_HEADER = 64 * 1024
MAX_BODY = 1024 * 1024
IO_TIMEOUT = 15.0

REASONS = {200: "OK", 201: "Created", 204: "No Content", 400: "Bad Request", 401: "Unauthorized",
           403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed", 409: "Conflict",
           411: "Length Required", 413: "Payload Too Large", 415: "Unsupported Media Type",
           429: "Too Many Requests", 431: "Request Header Fields Too Large", 500: "Server Error",
           502: "Bad Gateway", 503: "Service Unavailable", 504: "Gateway Timeout"}


class Request:
    __slots__ = ("method", "target", "path", "query", "headers", "body", "listener", "version")

    def __init__(self, method, target, version, headers, body, listener):
        self.method = method
        self.target = target
        self.version = version
        self.headers = headers  # lower-case name -> value
        self.body = body
        self.listener = listener
        path, dummy, query = target.partition("?")
        self.path = path
        self.query = query


class Response:
    """status, headers (list of pairs), body bytes; `reset_after` drops the connection instead of answering."""

    __slots__ = ("status", "headers", "body", "reset", "close")

    def __init__(self, status=200, body=b"", headers=None, reset=False, close=False):
        self.status = status
        self.body = body
        self.headers = list(headers or [])
        self.reset = reset
        self.close = close


# Loopback addresses for orgs that get one each: 127.1.0.1 upwards, 254 hosts per /24 (no .0, no .255).
# 127.0.0.x is left alone (127.0.0.1 is the usual loopback, tests use 127.0.0.2 as "another host").
HOSTS_PER_BLOCK = 254
MAX_ADDRESSES = HOSTS_PER_BLOCK * 256 * 254


def loopback_address(index):
    """The index-th (0-based) loopback address handed to an org: 127.1.0.1, ..., 127.1.0.254, 127.1.1.1, ..."""
    if not 0 <= index < MAX_ADDRESSES:
        raise ValueError("loopback address index %d out of range 0..%d" % (index, MAX_ADDRESSES - 1))
    block, host = divmod(index, HOSTS_PER_BLOCK)
    return "127.%d.%d.%d" % (1 + block // 256, block % 256, host + 1)


def ensure_fd_limit(listeners):
    """Raise this process's open-file limit (soft, up to the hard limit) for `listeners` sockets plus
    connections; OSError naming the numbers when the hard limit is too low."""
    if resource is None:
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    needed = listeners + 256
    wanted = 2 * listeners + 1024  # an idle keep-alive connection per org, and room to spare
    if soft != resource.RLIM_INFINITY and soft >= wanted:
        return
    if hard != resource.RLIM_INFINITY and hard < needed:
        raise OSError(errno.EMFILE, "serving %d listening sockets needs at least %d open files, but this process may "
                      "open %d (hard limit, RLIMIT_NOFILE): raise it (ulimit -Hn %d, or LimitNOFILE= for a "
                      "service) or serve fewer orgs" % (listeners, needed, hard, wanted))
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft == resource.RLIM_INFINITY or soft >= target:
        return
    resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


class Listener:
    __slots__ = ("sock", "host", "port", "tag", "tls", "ctx")

    def __init__(self, sock, host, port, tag, tls, ctx):
        self.sock = sock
        self.host = host
        self.port = port
        self.tag = tag
        self.tls = tls
        self.ctx = ctx


class _Conn:
    __slots__ = ("sock", "listener", "buf")

    def __init__(self, sock, listener):
        self.sock = sock
        self.listener = listener
        self.buf = b""


class HttpServer:
    """Serve `handler(Request) -> Response` on any number of loopback ports."""

    def __init__(self, handler, ssl_context=None, workers=96):
        self._handler = handler
        self._ssl = ssl_context
        self._sel = selectors.DefaultSelector()
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="sim-worker")
        self._pending = queue.SimpleQueue()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._sel.register(self._wake_r, selectors.EVENT_READ, "wake")
        self._conns = set()
        self._conns_lock = threading.Lock()
        self._stopping = False
        self._thread = None
        self._warned_fds = False
        self.listeners = []

    # -- set-up ---------------------------------------------------------------
    def listen(self, port=0, tag=None, tls=True, host="127.0.0.1", ssl_context=None):
        """Bind host:port (a loopback address; port 0 = ephemeral); returns the Listener.

        `ssl_context` replaces the server's context on this listener (a certificate for its address).
        OSError with .errno EADDRINUSE when the address is taken. Safe before or after start()."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            sock.close()
            raise OSError(exc.errno, "cannot listen on %s:%d: %s" % (host, port, exc.strerror)) from None
        sock.listen(256)
        sock.setblocking(False)
        ctx = ssl_context or self._ssl
        lst = Listener(sock, host, sock.getsockname()[1], tag, bool(tls and ctx), ctx if tls else None)
        self.listeners.append(lst)
        self._submit_registration(("listen", lst))
        return lst

    def start(self):
        self._thread = threading.Thread(target=self._loop, name="sim-selector", daemon=True)
        self._thread.start()

    def stop(self):
        self._stopping = True
        self._wake()
        if self._thread:
            self._thread.join(5)
        for lst in self.listeners:
            try:
                lst.sock.close()
            except OSError:
                pass
        with self._conns_lock:
            conns = list(self._conns)
        for c in conns:
            _hard_close(c.sock, reset=False)
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._sel.close()
        self._wake_r.close()
        self._wake_w.close()

    # -- selector thread ------------------------------------------------------
    def _wake(self):
        try:
            self._wake_w.send(b"x")
        except OSError:
            pass

    def _submit_registration(self, item):
        self._pending.put(item)
        if self._thread is not None and threading.current_thread() is not self._thread:
            self._wake()

    def _drain_pending(self):
        while True:
            try:
                kind, obj = self._pending.get_nowait()
            except queue.Empty:
                return
            if kind == "listen":
                self._sel.register(obj.sock, selectors.EVENT_READ, obj)
            elif kind == "conn":
                try:
                    self._sel.register(obj.sock, selectors.EVENT_READ, obj)
                except (ValueError, OSError, KeyError):
                    self._forget(obj)

    def _loop(self):
        self._drain_pending()
        while not self._stopping:
            try:
                events = self._sel.select(timeout=1.0)
            except OSError:
                if self._stopping:
                    return
                raise
            for key, dummy in events:
                data = key.data
                if data == "wake":
                    try:
                        while self._wake_r.recv(4096):
                            pass
                    except BlockingIOError:
                        pass
                    continue
                if isinstance(data, Listener):
                    self._accept(data)
                else:
                    try:
                        self._sel.unregister(key.fileobj)
                    except (KeyError, ValueError):
                        continue
                    self._pool_submit(self._serve, data)
            self._drain_pending()

    def _pool_submit(self, fn, *args):
        try:
            self._pool.submit(fn, *args)
        except RuntimeError:  # pool shut down
            pass

    def _accept(self, lst):
        while True:
            try:
                sock, dummy = lst.sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                if exc.errno in (errno.EMFILE, errno.ENFILE):
                    self._out_of_fds()
                return
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if lst.tls:
                self._pool_submit(self._handshake, sock, lst)
            else:
                sock.settimeout(IO_TIMEOUT)
                conn = _Conn(sock, lst)
                self._track(conn)
                self._sel.register(sock, selectors.EVENT_READ, conn)

    def _out_of_fds(self):
        """No file descriptor left for a new connection: close the idle keep-alive ones (as an idle timeout
        would), else the pending connection keeps the listener readable and the loop spins."""
        if not self._warned_fds:
            self._warned_fds = True
            limit = resource.getrlimit(resource.RLIMIT_NOFILE)[0] if resource else "?"
            print("eca_simulator: out of file descriptors (limit %s); closing idle connections" % limit,
                  file=sys.stderr)
        for key in list(self._sel.get_map().values()):
            if isinstance(key.data, _Conn):
                try:
                    self._sel.unregister(key.fileobj)
                except (KeyError, ValueError):
                    continue
                self._close(key.data)

    # -- worker side ----------------------------------------------------------
    def _track(self, conn):
        with self._conns_lock:
            self._conns.add(conn)

    def _forget(self, conn):
        with self._conns_lock:
            self._conns.discard(conn)

    def _handshake(self, sock, lst):
        sock.settimeout(IO_TIMEOUT)
        try:
            tls = lst.ctx.wrap_socket(sock, server_side=True)
        except (OSError, ssl.SSLError):
            _hard_close(sock, reset=False)
            return
        conn = _Conn(tls, lst)
        self._track(conn)
        self._park_or_serve(conn)

    def _park_or_serve(self, conn):
        pending = conn.buf or (isinstance(conn.sock, ssl.SSLSocket) and conn.sock.pending())
        if pending:
            self._serve(conn)
        elif self._stopping:
            self._close(conn)
        else:
            self._submit_registration(("conn", conn))

    def _close(self, conn, reset=False):
        self._forget(conn)
        _hard_close(conn.sock, reset=reset)

    def _serve(self, conn):
        try:
            req = self._read_request(conn)
        except _BadRequest as exc:
            self._send(conn, Response(exc.status, b"", close=True), keep=False)
            self._close(conn)
            return
        except (OSError, ssl.SSLError, ValueError):
            self._close(conn)
            return
        if req is None:
            self._close(conn)
            return
        try:
            resp = self._handler(req)
        except Exception:  # pylint: disable=broad-except
            import traceback
            traceback.print_exc()
            resp = Response(500, b'[{"message":"simulator internal error","errorCode":"UNKNOWN_EXCEPTION"}]',
                            [("Content-Type", "application/json;charset=UTF-8")])
        if resp.reset:
            self._close(conn, reset=True)
            return
        conn_hdr = req.headers.get("connection", "").lower()
        keep = not resp.close and (conn_hdr == "keep-alive" if req.version == "HTTP/1.0" else conn_hdr != "close")
        if not self._send(conn, resp, keep):
            self._close(conn)
            return
        if keep and not self._stopping:
            self._park_or_serve(conn)
        else:
            self._close(conn)

    def _send(self, conn, resp, keep):
        reason = REASONS.get(resp.status, "Unknown")
        lines = ["HTTP/1.1 %d %s" % (resp.status, reason),
                 "Date: " + email.utils.formatdate(usegmt=True)]
        names = {k.lower() for k, dummy in resp.headers}
        lines.extend("%s: %s" % kv for kv in resp.headers)
        if resp.status != 204 and "content-length" not in names:
            lines.append("Content-Length: %d" % len(resp.body))
        lines.append("Connection: " + ("keep-alive" if keep else "close"))
        data = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        if resp.status != 204:
            data += resp.body
        try:
            conn.sock.sendall(data)
            return True
        except (OSError, ssl.SSLError):
            return False

    def _recv(self, conn):
        data = conn.sock.recv(65536)
        if not data:
            raise EOFError
        conn.buf += data

    def _read_request(self, conn):
        try:
            while b"\r\n\r\n" not in conn.buf:
                if len(conn.buf) > MAX_HEADER:
                    raise _BadRequest(431)
                self._recv(conn)
        except EOFError:
            return None
        head, dummy, rest = conn.buf.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ")
        if len(parts) != 3 or not parts[2].startswith("HTTP/"):
            raise _BadRequest(400)
        method, target, version = parts
        headers = {}
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if not sep:
                raise _BadRequest(400)
            headers[name.strip().lower()] = value.strip()
        try:
            if headers.get("transfer-encoding", "").lower() == "chunked":
                conn.buf = rest
                body = self._read_chunked(conn)
            else:
                length = int(headers.get("content-length", "0") or 0)
                if headers.get("expect", "").lower() == "100-continue" and len(rest) < length:
                    conn.sock.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
                if length < 0 or length > MAX_BODY:
                    raise _BadRequest(413)
                while len(rest) < length:
                    data = conn.sock.recv(65536)
                    if not data:
                        return None
                    rest += data
                body, conn.buf = rest[:length], rest[length:]
        except EOFError:
            return None
        return Request(method, target, version, headers, body, conn.listener)

    def _read_chunked(self, conn):
        body = b""
        while True:
            while b"\r\n" not in conn.buf:
                self._recv(conn)
            line, dummy, conn.buf = conn.buf.partition(b"\r\n")
            size = int(line.split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while b"\r\n" not in conn.buf:
                    self._recv(conn)
                dummy, dummy, conn.buf = conn.buf.partition(b"\r\n")
                return body
            while len(conn.buf) < size + 2:
                self._recv(conn)
            body += conn.buf[:size]
            conn.buf = conn.buf[size + 2:]
            if len(body) > MAX_BODY:
                raise _BadRequest(413)


class _BadRequest(Exception):
    def __init__(self, status):
        super().__init__(status)
        self.status = status


def _hard_close(sock, reset):
    """Close; with reset=True the peer sees ECONNRESET (RST) instead of a clean FIN."""
    try:
        if reset:
            raw = sock
            if isinstance(sock, ssl.SSLSocket):
                # Skip the TLS close_notify: the point is an abrupt drop.
                raw = socket.socket(fileno=sock.detach())
            raw.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            raw.close()
            return
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        sock.close()
    except OSError:
        pass
