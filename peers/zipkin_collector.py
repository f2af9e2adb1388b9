#!/usr/bin/env python3
"""Smallest honest Zipkin-compatible collector for tests (loopback only).

  POST /api/v2/spans   application/json  -> validated against zipkin2-api.yaml
                                            (definitions/ListOfSpans) + id checks
  POST /api/v1/spans   application/x-thrift -> zipkin_decode.read_thrift_spans
                                            + py_zipkin conversion to v2, validated too
  (either may be Content-Encoding: gzip)  -> 202 on success, 400 + reason otherwise
  Scribe (--scribe-port, framed TBinaryProtocol, thriftpy2 server of scribe.thrift):
    Log(list<LogEntry>) with category "zipkin" and message = base64(thrift Span), the way
    the original library sent spans -> decoded and validated like /api/v1/spans; OK, or
    TRY_LATER for the next N calls after PUT /_scribe/try-later/N
  GET  /api/v2/trace/{traceId}            -> spans of that trace (JSON v2)
  GET  /_spans   -> everything accepted so far;   DELETE /_spans -> reset
  GET  /_errors  -> list of rejection reasons (so a test can assert none)

usage: zipkin_collector.py [--port 9411] [--scribe-port P] [--spec vendor/zipkin2-api.yaml]
prints "listening on 127.0.0.1:PORT" once ready (port 0 = pick a free one), and
"scribe listening on 127.0.0.1:PORT" when --scribe-port is given.
"""
import argparse
import base64
import binascii
import gzip
import json
import os
import re
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jsonschema
import yaml

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from zipkin_decode import read_thrift_spans, v2_json  # noqa: E402

HEX16, HEX16_32 = re.compile(r"^[0-9a-f]{16}$"), re.compile(r"^[0-9a-f]{16}([0-9a-f]{16})?$")


def load_validator(spec_path):
    spec = yaml.safe_load(open(spec_path))
    schema = {"$ref": "#/definitions/ListOfSpans", "definitions": spec["definitions"]}
    # swagger 2.0 "definitions" are JSON-Schema draft-4 compatible
    return jsonschema.Draft4Validator(schema, format_checker=jsonschema.FormatChecker())


def check(validator, spans):
    errs = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
            for e in validator.iter_errors(spans)]
    # the spec's patterns are unanchored; zipkin2.Span rejects non-lower-hex ids
    for i, s in enumerate(spans if isinstance(spans, list) else []):
        if not isinstance(s, dict):
            continue
        if not HEX16_32.match(str(s.get("traceId", ""))):
            errs.append(f"{i}/traceId: not 16 or 32 lower-hex: {s.get('traceId')!r}")
        for k in ("id", "parentId"):
            if k in s and not HEX16.match(str(s[k])):
                errs.append(f"{i}/{k}: not 16 lower-hex: {s[k]!r}")
    return errs


class Store:
    def __init__(self):
        self.lock, self.spans, self.errors = threading.Lock(), [], []
        self.scribe_try_later = 0  # the next N Log calls answer TRY_LATER

    def accept(self, validator, where, spans):
        errs = check(validator, spans)
        with self.lock:
            if errs:
                self.errors.append(f"{where}: " + "; ".join(errs))
                return errs
            self.spans.extend(spans)
        return []


def serve_scribe(port, validator, store):
    """A real Scribe endpoint (thriftpy2's threaded server, framed binary protocol)."""
    import thriftpy2
    from thriftpy2.protocol import TBinaryProtocolFactory
    from thriftpy2.server import TThreadedServer
    from thriftpy2.thrift import TProcessor
    from thriftpy2.transport import TFramedTransportFactory, TServerSocket

    idl = thriftpy2.load(os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                      "scribe.thrift"), module_name="scribe_thrift")

    class Handler:
        def Log(self, messages):
            with store.lock:
                if store.scribe_try_later > 0:
                    store.scribe_try_later -= 1
                    return idl.ResultCode.TRY_LATER
            spans = []
            for entry in messages:
                if entry.category != "zipkin":
                    with store.lock:
                        store.errors.append(f"scribe: category {entry.category!r}, not 'zipkin'")
                    continue
                try:
                    raw = base64.b64decode(entry.message, validate=True)
                    spans.extend(v2_json(read_thrift_spans(raw)))
                except (binascii.Error, ValueError, Exception) as e:  # noqa: BLE001
                    with store.lock:
                        store.errors.append(f"scribe: decode: {type(e).__name__}: {e}")
            store.accept(validator, "scribe", spans)
            return idl.ResultCode.OK

    sock = TServerSocket(host="127.0.0.1", port=port)
    sock.listen()  # port 0: the kernel picks one; serve() below accepts on this socket
    bound = sock.sock.getsockname()[1]
    sock.listen = lambda: None
    server = TThreadedServer(TProcessor(idl.scribe, Handler()), sock,
                             iprot_factory=TBinaryProtocolFactory(),
                             itrans_factory=TFramedTransportFactory())
    threading.Thread(target=server.serve, daemon=True).start()
    print(f"scribe listening on 127.0.0.1:{bound}", flush=True)


def make_handler(validator, store):
    class H(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, fmt, *a):
            pass

        def reply(self, code, body=b"", ctype="application/json"):
            if not isinstance(body, bytes):
                body = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def reject(self, why):
            with store.lock:
                store.errors.append(f"{self.path}: {why}")
            self.reply(400, why.encode(), "text/plain")

        def do_POST(self):
            n = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(n)
            if (self.headers.get("Content-Encoding") or "").lower() == "gzip":
                body = gzip.decompress(body)
            ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
            try:
                if self.path == "/api/v2/spans":
                    if ctype != "application/json":
                        return self.reject(f"unsupported Content-Type {ctype!r}")
                    spans = json.loads(body.decode("utf-8"))
                elif self.path == "/api/v1/spans":
                    if ctype != "application/x-thrift":
                        return self.reject(f"only application/x-thrift here, got {ctype!r}")
                    spans = v2_json(read_thrift_spans(body))
                else:
                    return self.reply(404, b"not found", "text/plain")
            except Exception as e:  # noqa: BLE001
                return self.reject(f"decode: {type(e).__name__}: {e}")
            errs = store.accept(validator, self.path, spans)
            if errs:
                return self.reply(400, "; ".join(errs).encode(), "text/plain")
            self.reply(202)

        def do_GET(self):
            with store.lock:
                if self.path == "/_spans":
                    return self.reply(200, store.spans)
                if self.path == "/_errors":
                    return self.reply(200, store.errors)
                m = re.match(r"^/api/v2/trace/([0-9a-f]+)$", self.path)
                if m:
                    t = m.group(1).rjust(16, "0")[-32:]
                    got = [s for s in store.spans if s["traceId"].endswith(t[-16:])
                           and (len(t) == 16 or s["traceId"] == t)]
                    return self.reply(200 if got else 404, got)
            self.reply(404, b"not found", "text/plain")

        def do_PUT(self):
            m = re.match(r"^/_scribe/try-later/([0-9]+)$", self.path)
            if m:
                with store.lock:
                    store.scribe_try_later = int(m.group(1))
                return self.reply(204)
            self.reply(404, b"not found", "text/plain")

        def do_DELETE(self):
            if self.path == "/_spans":
                with store.lock:
                    store.spans.clear()
                    store.errors.clear()
                return self.reply(204)
            self.reply(404, b"not found", "text/plain")

    return H


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=9411)
    ap.add_argument("--scribe-port", type=int, default=None)
    ap.add_argument("--spec", default=os.path.join(os.path.dirname(
        os.path.abspath(__file__)), "vendor", "zipkin2-api.yaml"))
    a = ap.parse_args()
    validator, store = load_validator(a.spec), Store()
    if a.scribe_port is not None:
        serve_scribe(a.scribe_port, validator, store)
    srv = ThreadingHTTPServer(("127.0.0.1", a.port), make_handler(validator, store))
    print(f"listening on 127.0.0.1:{srv.server_address[1]}", flush=True)
    srv.serve_forever()


if __name__ == "__main__":
    main()
