#!/usr/bin/env python3
"""greeter-python: the kit's load client on gRPC C-core (Debian's python3-grpcio).

Keeps the contract in clients/README.md: the same flags, progress lines and JSON report as
every client of the kit, so the e2e suite reads them all with one parser.
"""

import json
import os
import signal
import sys
import threading
import time

import grpc

# Generated at image build time from proto/ by protoc and grpc_python_plugin.
import helloworld_pb2
import helloworld_pb2_grpc

LANGUAGE = "python"
METHOD = "helloworld.Hello/SayHello"

# The greeter's service config (greeter -print-service-config), built from parts so that
# --policy, --retries and --health each remove exactly one of them.
RETRY_POLICY = {
    "maxAttempts": 5,
    "initialBackoff": "0.1s",
    "maxBackoff": "1s",
    "backoffMultiplier": 2,
    "retryableStatusCodes": ["UNAVAILABLE", "UNKNOWN"],
}

FLAGS = {
    "target": "",
    "calls": "300",
    "duration": "0",
    "rate": "100",
    "policy": "round_robin",
    "retries": "true",
    "health": "true",
    "keepalive": "0",
    "dns-min-resolve": "0",
    "deadline": "2",
    "tls": "false",
    "ca": "",
    "authority": "",
    "name": "polyglot",
}


class UsageError(Exception):
    pass


def parse_flags(argv):
    f = dict(FLAGS)
    for arg in argv:
        if not arg.startswith("--") or "=" not in arg:
            raise UsageError(f"{arg!r}: flags are --name=value ({', '.join('--' + k for k in FLAGS)})")
        k, v = arg[2:].split("=", 1)
        if k not in FLAGS:
            raise UsageError(f"unknown flag --{k} (known: {', '.join('--' + k for k in FLAGS)})")
        f[k] = v
    if not f["target"]:
        raise UsageError("--target is required, e.g. --target=dns:///hello-grpc-headless.NS.svc.cluster.local:50051")
    if f["policy"] not in ("round_robin", "pick_first", "default"):
        raise UsageError(f"--policy={f['policy']}: want round_robin, pick_first or default")
    for k in ("retries", "health", "tls"):
        if f[k] not in ("true", "false"):
            raise UsageError(f"--{k}={f[k]}: want true or false")
        f[k] = f[k] == "true"
    for k, conv in (("calls", int), ("duration", float), ("rate", float), ("keepalive", float),
                    ("dns-min-resolve", float), ("deadline", float)):
        try:
            f[k] = conv(f[k])
        except ValueError:
            raise UsageError(f"--{k}={f[k]}: not a number") from None
        if f[k] < 0:
            raise UsageError(f"--{k}={f[k]}: must not be negative")
    if f["deadline"] == 0:
        raise UsageError("--deadline must be more than 0 seconds")
    if f["keepalive"] and f["keepalive"] < 10:
        raise UsageError("--keepalive below 10 s: the kit's servers answer such pings with GOAWAY too_many_pings")
    if f["ca"] and not f["tls"]:
        raise UsageError("--ca needs --tls")
    return f


def service_config(f):
    sc = {}
    if f["policy"] != "default":
        sc["loadBalancingConfig"] = [{f["policy"]: {}}]
    # C-core checks health only under a policy that supports it (round_robin), and only if
    # the channel has not set grpc.inhibit_health_checking.
    if f["health"] and f["policy"] == "round_robin":
        sc["healthCheckConfig"] = {"serviceName": "helloworld.Hello"}
    if f["retries"]:
        sc["methodConfig"] = [
            {"name": [{"service": "helloworld.Hello"}, {"service": "helloworld.Goodbye"}], "retryPolicy": RETRY_POLICY}
        ]
    return sc


def channel(f):
    opts = [
        # The service config: C-core reads it from this channel option, the same JSON as
        # every stack's.
        ("grpc.service_config", json.dumps(service_config(f))),
        # Retries are on by default in C-core since 1.40; stated anyway, so that
        # --retries=false means no retry policy rather than retries turned off globally.
        ("grpc.enable_retries", 1),
    ]
    if f["dns-min-resolve"]:
        # C-core re-resolves when a connection closes (the servers' MAX_CONNECTION_AGE, a
        # pod gone) but at most once per this interval (30 s by default), and a request inside
        # it waits: in a rolling restart the old pods can all drain before the client learns
        # the new ones. The kit's Go clients use 2-5 s (docs/clients.md).
        opts.append(("grpc.dns_min_time_between_resolutions_ms", int(f["dns-min-resolve"] * 1000)))
    if f["keepalive"]:
        # HTTP/2 pings on an idle connection find a dead peer (a node gone without FIN or
        # RST); the kit's servers permit pings every 10 s and more seldom.
        opts += [
            ("grpc.keepalive_time_ms", int(f["keepalive"] * 1000)),
            ("grpc.keepalive_timeout_ms", 5000),
            ("grpc.keepalive_permit_without_calls", 1),
            ("grpc.http2.max_pings_without_data", 0),
        ]
    if f["authority"]:
        # With TLS this is also the name the server's certificate must carry.
        opts.append(("grpc.default_authority", f["authority"]))
        if f["tls"]:
            opts.append(("grpc.ssl_target_name_override", f["authority"]))
    if f["tls"]:
        ca = None
        if f["ca"]:
            with open(f["ca"], "rb") as fh:
                ca = fh.read()
        return grpc.secure_channel(f["target"], grpc.ssl_channel_credentials(root_certificates=ca), options=opts)
    return grpc.insecure_channel(f["target"], options=opts)


class Tally:
    def __init__(self):
        self.ok = 0
        self.failed = 0
        self.pods = {}  # pod -> {"node", "calls", "first_unix"}
        self.versions = {}
        self.errors = {}  # code name -> {"count", "example"}

    def add_ok(self, backend):
        self.ok += 1
        p = self.pods.get(backend.pod)
        if p is None:
            p = self.pods[backend.pod] = {"node": backend.node, "calls": 0, "first_unix": time.time()}
        p["calls"] += 1
        if backend.version:
            self.versions[backend.version] = self.versions.get(backend.version, 0) + 1

    def add_err(self, code, message):
        self.failed += 1
        e = self.errors.setdefault(code, {"count": 0, "example": message})
        e["count"] += 1


def progress(t, elapsed, f):
    p = {"calls": t.ok + t.failed, "failed": t.failed, "elapsed_s": round(elapsed, 3)}
    if f["duration"]:
        p["duration_s"] = f["duration"]
    else:
        p["planned_calls"] = f["calls"]
    print(json.dumps({"progress": p}, separators=(",", ":")), file=sys.stderr, flush=True)


def run(f, stop):
    ch = channel(f)
    stub = helloworld_pb2_grpc.HelloStub(ch)
    t = Tally()
    start = time.monotonic()
    next_progress = start + 1
    i = 0
    while not stop.is_set():
        now = time.monotonic()
        if f["duration"] and now - start >= f["duration"]:
            break
        if not f["duration"] and i >= f["calls"]:
            break
        if f["rate"]:
            wait = start + i / f["rate"] - now
            if wait > 0 and stop.wait(wait):
                break
        i += 1
        try:
            reply = stub.SayHello(helloworld_pb2.SayHelloRequest(name=f["name"]), timeout=f["deadline"])
            t.add_ok(reply.backend)
        except grpc.RpcError as e:
            t.add_err(e.code().name, e.details() or "")
        if time.monotonic() >= next_progress:
            progress(t, time.monotonic() - start, f)
            next_progress += 1
    elapsed = time.monotonic() - start
    progress(t, elapsed, f)
    ch.close()
    return t, elapsed


def summary(f, t, elapsed):
    calls = t.ok + t.failed
    backends = [
        {"pod": pod, "node": p["node"], "calls": p["calls"], "share": round(p["calls"] / t.ok, 4) if t.ok else 0,
         "first_unix": round(p["first_unix"], 3)}
        for pod, p in sorted(t.pods.items())
    ]
    return {
        "target": f["target"],
        "method": METHOD,
        "lb": f["policy"],
        "calls": calls,
        "ok": t.ok,
        "failed": t.failed,
        "elapsed_s": round(elapsed, 3),
        "per_second": round(calls / elapsed, 1) if elapsed > 0 else 0,
        "backends": backends,
        "by_version": t.versions,
        "errors": [{"code": c, "count": e["count"], "example": e["example"]} for c, e in sorted(t.errors.items())],
        "client": {"language": LANGUAGE, "grpc": grpc.__version__, "policy": f["policy"], "retries": f["retries"],
                   "health": f["health"], "keepalive_s": f["keepalive"], "dns_min_resolve_s": f["dns-min-resolve"]},
    }


def main(argv):
    try:
        f = parse_flags(argv)
    except UsageError as e:
        print(f"greeter-{LANGUAGE}: {e}", file=sys.stderr)
        return 2
    if f["ca"] and not os.access(f["ca"], os.R_OK):
        print(f"greeter-{LANGUAGE}: --ca={f['ca']}: cannot read it", file=sys.stderr)
        return 1
    stop = threading.Event()
    # SIGTERM (the Job deleted) or SIGINT: finish the call in flight, then report.
    for s in (signal.SIGTERM, signal.SIGINT):
        signal.signal(s, lambda *_: stop.set())
    t, elapsed = run(f, stop)
    print(json.dumps(summary(f, t, elapsed), separators=(",", ":")), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
