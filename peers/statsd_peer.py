#!/usr/bin/env python3
"""Drive Etsy statsd 0.9.0 (npm) as a test peer, on loopback, on free ports.

  python3 statsd_peer.py selftest          # start, send, query, stop
  python3 statsd_peer.py query counters [MGMT_PORT]   # JSON dump of a running one

As a module:
  with StatsdPeer() as sd:                 # sd.port (UDP), sd.mgmt_port (TCP)
      ... point the code under test at 127.0.0.1:sd.port ...
      sd.wait_for("counters", "a.b", 3)    # polls the admin interface
      sd.query("timers") -> {"lat": [12.5, 7]}
"""
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time

PEERS_HOME = os.environ.get(
    "TOMOGRAPH_PEERS_HOME", os.path.join(os.path.expanduser("~"), ".cache", "tomograph", "peers"))
STATSD_JS = os.environ.get(
    "STATSD_JS", os.path.join(PEERS_HOME, "statsd/node_modules/statsd/stats.js"))


def _free_port(kind):
    s = socket.socket(socket.AF_INET, kind)
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def _inspect_to_py(text):
    """statsd's admin interface prints Node's util.inspect(), not JSON. Keys are
    sanitized to [A-Za-z0-9_.;=-] so a light rewrite is enough (arrays over 100
    items are truncated by util.inspect: avoid that in tests)."""
    if "more item" in text:
        raise ValueError("util.inspect truncated the array: " + text[:200])
    t = re.sub(r"'([^'\\]*)'", r'"\1"', text)                 # 'k' -> "k"
    t = re.sub(r'([{,]\s*)([A-Za-z_$][\w$]*)\s*:', r'\1"\2":', t)  # bare keys
    t = t.replace("NaN", "null").replace("Infinity", "1e999")
    return json.loads(t)


def admin(cmd, port, host="127.0.0.1", timeout=5.0):
    """One command per connection (the server treats each TCP read as a command)."""
    with socket.create_connection((host, port), timeout=timeout) as s:
        s.sendall(cmd.encode() + b"\n")
        buf = b""
        while not buf.endswith(b"END\n\n") and not (cmd.startswith("health") and buf.endswith(b"\n")):
            chunk = s.recv(65536)
            if not chunk:
                break
            buf += chunk
        try:
            s.sendall(b"quit\n")
        except OSError:
            pass
    return buf.decode()


class StatsdPeer:
    def __init__(self, port=None, mgmt_port=None, flush_ms=3600000, extra=None):
        self.port = port or _free_port(socket.SOCK_DGRAM)
        self.mgmt_port = mgmt_port or _free_port(socket.SOCK_STREAM)
        cfg = {"address": "127.0.0.1", "port": self.port, "mgmt_address": "127.0.0.1",
               "mgmt_port": self.mgmt_port, "backends": [], "flushInterval": flush_ms,
               "dumpMessages": True}
        cfg.update(extra or {})
        self.dir = tempfile.mkdtemp(prefix="statsd-")
        self.cfg = os.path.join(self.dir, "config.js")
        with open(self.cfg, "w") as f:
            json.dump(cfg, f)           # JSON is valid statsd config syntax
        self.log = os.path.join(self.dir, "statsd.log")
        self.proc = None

    def start(self, timeout=15.0):
        self.proc = subprocess.Popen(["node", STATSD_JS, self.cfg],
                                     stdout=open(self.log, "w"), stderr=subprocess.STDOUT)
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout:
            if self.proc.poll() is not None:
                raise RuntimeError("statsd exited: " + open(self.log).read())
            try:
                if "health: up" in admin("health", self.mgmt_port, timeout=0.5):
                    self.startup_s = time.monotonic() - t0
                    return self
            except OSError:
                time.sleep(0.05)
        raise TimeoutError("statsd did not come up: " + open(self.log).read())

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(5)

    __enter__ = start

    def __exit__(self, *exc):
        self.stop()

    def send(self, payload):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.sendto(payload.encode() if isinstance(payload, str) else payload,
                     ("127.0.0.1", self.port))

    def query(self, what):  # counters | timers | gauges
        out = admin(what, self.mgmt_port)
        return _inspect_to_py(out[: out.rindex("END")])

    def stats(self):
        out = admin("stats", self.mgmt_port)
        return dict(l.split(": ", 1) for l in out.splitlines() if ": " in l)

    def wait_for(self, what, key, value=None, timeout=5.0):
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout:
            got = self.query(what).get(key)
            if got is not None and (value is None or got == value):
                return got
            time.sleep(0.02)
        raise AssertionError(f"{what}[{key!r}] never became {value!r}; "
                             f"have {self.query(what)!r}")

    def received_lines(self):
        """Raw lines statsd saw (dumpMessages: true) - handy for byte-exact checks."""
        return [l.split("DEBUG: ", 1)[1] for l in open(self.log).read().splitlines()
                if "DEBUG: " in l and "Bad line:" not in l]


def selftest():
    with StatsdPeer() as sd:
        print(f"statsd up in {sd.startup_s:.2f}s udp={sd.port} mgmt={sd.mgmt_port}")
        sd.send("a.b:1|c")
        sd.send("a.b:2|c\nlat:12.5|ms\nr:1|c|@0.1\nq:42|g\nq:-2|g\nbogus")
        assert sd.wait_for("counters", "a.b", 3) == 3
        assert sd.wait_for("counters", "r") == 10
        assert sd.query("timers") == {"lat": [12.5]}
        assert sd.query("gauges") == {"q": 40}
        assert sd.stats()["messages.bad_lines_seen"] == "1"
        assert "a.b:1|c" in sd.received_lines()
        print(json.dumps(sd.query("counters")))
    print("1 passed, 0 failed")


def serve(port, mgmt_port):
    """Foreground statsd on the given ports until killed (SIGTERM stops node too)."""
    import signal
    peer = StatsdPeer(port=port, mgmt_port=mgmt_port).start()
    print(f"statsd listening on udp 127.0.0.1:{peer.port}, admin tcp 127.0.0.1:{peer.mgmt_port}, "
          f"log {peer.log}", flush=True)
    signal.signal(signal.SIGTERM, lambda *_: peer.proc.terminate())
    signal.signal(signal.SIGINT, lambda *_: peer.proc.terminate())
    peer.proc.wait()


if __name__ == "__main__":
    if sys.argv[1:2] == ["query"]:
        port = int(sys.argv[3]) if len(sys.argv) > 3 else 8126
        print(json.dumps(_inspect_to_py(admin(sys.argv[2], port).rsplit("END", 1)[0])))
    elif sys.argv[1:2] == ["serve"]:
        serve(int(sys.argv[2]), int(sys.argv[3]))
    elif sys.argv[1:2] in (["selftest"], []):
        selftest()
    else:
        sys.exit(__doc__)
