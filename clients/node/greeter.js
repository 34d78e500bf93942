#!/usr/bin/env node
// greeter-node: the kit's load client on @grpc/grpc-js.
//
// Keeps the contract in clients/README.md: the same flags, progress lines and JSON report as
// every client of the kit, so the e2e suite reads them all with one parser.
'use strict';

const fs = require('fs');
const path = require('path');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');

const LANGUAGE = 'node';
const METHOD = 'helloworld.Hello/SayHello';
// proto/ is read at start by @grpc/proto-loader, grpc-js's own way to use a .proto (no
// generated code). GREETER_PROTO_DIR points at it in the image; the default is the repo's.
const PROTO_DIR = process.env.GREETER_PROTO_DIR || path.join(__dirname, '..', '..', 'proto');

// The greeter's retry policy (greeter -print-service-config).
const RETRY_POLICY = {
  maxAttempts: 5,
  initialBackoff: '0.1s',
  maxBackoff: '1s',
  backoffMultiplier: 2,
  retryableStatusCodes: ['UNAVAILABLE', 'UNKNOWN'],
};

const FLAGS = {
  target: '', calls: '300', duration: '0', rate: '100', policy: 'round_robin', retries: 'true',
  health: 'true', keepalive: '0', 'dns-min-resolve': '0', deadline: '2', tls: 'false', ca: '', authority: '', name: 'polyglot',
};

class UsageError extends Error {}

function parseFlags(argv) {
  const f = { ...FLAGS };
  const known = Object.keys(FLAGS).map((k) => '--' + k).join(', ');
  for (const arg of argv) {
    const m = /^--([a-z-]+)=(.*)$/s.exec(arg);
    if (!m) throw new UsageError(`'${arg}': flags are --name=value (${known})`);
    if (!(m[1] in FLAGS)) throw new UsageError(`unknown flag --${m[1]} (known: ${known})`);
    f[m[1]] = m[2];
  }
  if (!f.target) throw new UsageError('--target is required, e.g. --target=dns:///hello-grpc-headless.NS.svc.cluster.local:50051');
  if (!['round_robin', 'pick_first', 'default'].includes(f.policy)) {
    throw new UsageError(`--policy=${f.policy}: want round_robin, pick_first or default`);
  }
  for (const k of ['retries', 'health', 'tls']) {
    if (f[k] !== 'true' && f[k] !== 'false') throw new UsageError(`--${k}=${f[k]}: want true or false`);
    f[k] = f[k] === 'true';
  }
  for (const k of ['calls', 'duration', 'rate', 'keepalive', 'dns-min-resolve', 'deadline']) {
    const v = Number(f[k]);
    if (f[k] === '' || !Number.isFinite(v)) throw new UsageError(`--${k}=${f[k]}: not a number`);
    if (v < 0) throw new UsageError(`--${k}=${f[k]}: must not be negative`);
    f[k] = v;
  }
  if (!Number.isInteger(f.calls)) throw new UsageError(`--calls=${f.calls}: not a whole number`);
  if (f.deadline === 0) throw new UsageError('--deadline must be more than 0 seconds');
  if (f.keepalive && f.keepalive < 10) {
    throw new UsageError('--keepalive below 10 s: the kit\'s servers answer such pings with GOAWAY too_many_pings');
  }
  if (f.ca && !f.tls) throw new UsageError('--ca needs --tls');
  return f;
}

function serviceConfig(f) {
  const sc = {};
  if (f.policy !== 'default') sc.loadBalancingConfig = [{ [f.policy]: {} }];
  // grpc-js has no client-side health checking (it ignores healthCheckConfig); it is left
  // in the config so the config is the same JSON as every other stack's.
  if (f.health && f.policy === 'round_robin') sc.healthCheckConfig = { serviceName: 'helloworld.Hello' };
  if (f.retries) {
    sc.methodConfig = [{ name: [{ service: 'helloworld.Hello' }, { service: 'helloworld.Goodbye' }], retryPolicy: RETRY_POLICY }];
  }
  return sc;
}

function client(f) {
  const def = protoLoader.loadSync(path.join(PROTO_DIR, 'helloworld', 'helloworld.proto'), {
    keepCase: true, longs: String, enums: String, defaults: true, includeDirs: [PROTO_DIR],
  });
  const { helloworld } = grpc.loadPackageDefinition(def);
  const opts = {
    // The service config, the same JSON as every stack's. grpc-js applies it before any
    // from DNS TXT records (which it does not look up unless asked).
    'grpc.service_config': JSON.stringify(serviceConfig(f)),
    // Retries are on by default in grpc-js; --retries=false drops the policy instead.
    'grpc.enable_retries': 1,
  };
  if (f['dns-min-resolve']) {
    // grpc-js re-resolves when a connection closes (the servers' MAX_CONNECTION_AGE, a pod
    // gone) but at most once per this interval (30 s by default), and a request inside it
    // waits: in a rolling restart the old pods can all drain before the client learns the
    // new ones. The kit's Go clients use 2-5 s (docs/clients.md).
    opts['grpc.dns_min_time_between_resolutions_ms'] = Math.round(f['dns-min-resolve'] * 1000);
  }
  if (f.keepalive) {
    // HTTP/2 pings find a peer that vanished without FIN or RST; the kit's servers permit
    // one every 10 s and more seldom.
    opts['grpc.keepalive_time_ms'] = Math.round(f.keepalive * 1000);
    opts['grpc.keepalive_timeout_ms'] = 5000;
    opts['grpc.keepalive_permit_without_calls'] = 1;
  }
  if (f.authority) {
    opts['grpc.default_authority'] = f.authority;
    // With TLS this is also the name the server's certificate must carry.
    if (f.tls) opts['grpc.ssl_target_name_override'] = f.authority;
  }
  const creds = f.tls
    ? grpc.credentials.createSsl(f.ca ? fs.readFileSync(f.ca) : null)
    : grpc.credentials.createInsecure();
  return new helloworld.Hello(f.target, creds, opts);
}

function grpcVersion() {
  try {
    return require('@grpc/grpc-js/package.json').version;
  } catch {
    return '';
  }
}

const CODE_NAMES = Object.fromEntries(Object.entries(grpc.status).map(([k, v]) => [v, k]));

function sayHello(stub, f) {
  return new Promise((resolve) => {
    stub.SayHello({ name: f.name }, { deadline: Date.now() + f.deadline * 1000 }, (err, reply) => resolve({ err, reply }));
  });
}

function sleep(ms, stop) {
  return new Promise((resolve) => {
    const t = setTimeout(resolve, ms);
    stop.wake = () => { clearTimeout(t); resolve(); };
  });
}

async function run(f, stop) {
  const stub = client(f);
  const tally = { ok: 0, failed: 0, pods: new Map(), versions: {}, errors: new Map() };
  const start = performance.now();
  const elapsed = () => (performance.now() - start) / 1000;
  const progress = () => {
    const p = { calls: tally.ok + tally.failed, failed: tally.failed, elapsed_s: +elapsed().toFixed(3) };
    if (f.duration) p.duration_s = f.duration; else p.planned_calls = f.calls;
    process.stderr.write(JSON.stringify({ progress: p }) + '\n');
  };
  const ticker = setInterval(progress, 1000);
  for (let i = 0; !stop.stopped; i++) {
    if (f.duration ? elapsed() >= f.duration : i >= f.calls) break;
    if (f.rate) {
      const wait = (i / f.rate - elapsed()) * 1000;
      if (wait > 0) await sleep(wait, stop);
      if (stop.stopped) break;
    }
    const { err, reply } = await sayHello(stub, f);
    if (err) {
      tally.failed++;
      const code = CODE_NAMES[err.code] || `CODE_${err.code}`;
      const e = tally.errors.get(code) || { count: 0, example: err.details || err.message };
      e.count++;
      tally.errors.set(code, e);
      continue;
    }
    tally.ok++;
    const b = reply.backend || {};
    let p = tally.pods.get(b.pod);
    if (!p) {
      p = { node: b.node || '', calls: 0, first_unix: Date.now() / 1000 };
      tally.pods.set(b.pod, p);
    }
    p.calls++;
    if (b.version) tally.versions[b.version] = (tally.versions[b.version] || 0) + 1;
  }
  clearInterval(ticker);
  const el = elapsed();
  progress();
  stub.close();
  const calls = tally.ok + tally.failed;
  return {
    target: f.target,
    method: METHOD,
    lb: f.policy,
    calls,
    ok: tally.ok,
    failed: tally.failed,
    elapsed_s: +el.toFixed(3),
    per_second: el > 0 ? +(calls / el).toFixed(1) : 0,
    backends: [...tally.pods.entries()].sort(([a], [b]) => (a < b ? -1 : 1)).map(([pod, p]) => ({
      pod, node: p.node, calls: p.calls, share: tally.ok ? +(p.calls / tally.ok).toFixed(4) : 0,
      first_unix: +p.first_unix.toFixed(3),
    })),
    by_version: tally.versions,
    errors: [...tally.errors.entries()].sort(([a], [b]) => (a < b ? -1 : 1))
      .map(([code, e]) => ({ code, count: e.count, example: e.example })),
    client: {
      language: LANGUAGE, grpc: grpcVersion(), policy: f.policy, retries: f.retries, health: f.health,
      keepalive_s: f.keepalive, dns_min_resolve_s: f['dns-min-resolve'],
    },
  };
}

async function main() {
  let f;
  try {
    f = parseFlags(process.argv.slice(2));
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
    process.stderr.write(`greeter-${LANGUAGE}: ${e.message}\n`);
    return 2;
  }
  if (f.ca) {
    try {
      fs.accessSync(f.ca, fs.constants.R_OK);
    } catch {
      process.stderr.write(`greeter-${LANGUAGE}: --ca=${f.ca}: cannot read it\n`);
      return 1;
    }
  }
  // SIGTERM (the Job deleted) or SIGINT: finish the call in flight, then report.
  const stop = { stopped: false, wake: () => {} };
  for (const s of ['SIGTERM', 'SIGINT']) process.on(s, () => { stop.stopped = true; stop.wake(); });
  const summary = await run(f, stop);
  process.stdout.write(JSON.stringify(summary) + '\n');
  return 0;
}

main().then((code) => { process.exitCode = code; }, (e) => {
  process.stderr.write(`greeter-${LANGUAGE}: ${e.stack || e}\n`);
  process.exitCode = 1;
});
