#!/usr/bin/env node
// Sends JPEG files as camera frames to framewire's receivers, over HTTP and Redis, as
// framewire's wire contract says (README.md, "Wire contract"):
//
//   HTTP:  POST /frames, body = the JPEG, Content-Type: image/jpeg, headers
//          X-Framewire-Camera, X-Framewire-Seq, X-Framewire-Captured-Ns
//          (and Authorization: Bearer <token> when a token is given)
//   Redis: XADD framewire:frames:<camera> MAXLEN ~ 8 * seq <n> captured_ns <ns> jpeg <bytes>
//
// The two transports are independent, each with a one-frame mailbox: a frame that finds its
// transport still busy waits there, replacing (and counting as dropped) any older frame
// waiting, so the latest frame wins, nothing queues up, and a slow or unreachable receiver
// never holds up the other transport or the frame clock.

import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { createClient } from 'redis';

const USAGE = `usage: node producer.mjs [options] JPEG_FILE_OR_DIR...

Sends the JPEG files (a directory: its *.jpg and *.jpeg files, by name) in turn as the
frames of one camera, at --fps, --count frames in all.

options (each also read from the environment variable named after it):
  --http-url URL    where to POST frames; "" disables HTTP
                    [FRAMEWIRE_HTTP_URL; default http://127.0.0.1:8001/frames]
  --redis-url URL   Redis to XADD frames to (password in the URL, rediss:// for TLS);
                    "" disables Redis  [FRAMEWIRE_REDIS_URL; default redis://127.0.0.1:6379/0]
  --token TOKEN     bearer token for the HTTP receiver [FRAMEWIRE_TOKEN; default none]
  --camera ID       camera id, [A-Za-z0-9][A-Za-z0-9_.-]{0,63} [FRAMEWIRE_CAMERA; default cam0]
  --fps N           frames per second; 0: as fast as the transports take them
                    [FRAMEWIRE_FPS; default 10]
  --count N         frames to send; 0: until Ctrl-C [FRAMEWIRE_COUNT; default 0]
  --timeout S       seconds to wait for a receiver or Redis [FRAMEWIRE_TIMEOUT; default 2]
  -h, --help        this help

Exit status: 0 when every enabled transport delivered frames; 1 when the HTTP receiver
refused a frame (4xx: its JSON reason is printed, e.g. "unauthorized"); 2 on a usage
error; 3 when a transport could not deliver any frame (unreachable). On exit it prints
one JSON line of counts to stdout.`;

const CAMERA = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;
const STREAM_PREFIX = 'framewire:frames:';
const MAXLEN = 8;

class UsageError extends Error {}

function options(argv, env) {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      'http-url': { type: 'string' },
      'redis-url': { type: 'string' },
      token: { type: 'string' },
      camera: { type: 'string' },
      fps: { type: 'string' },
      count: { type: 'string' },
      timeout: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  const pick = (name, variable, fallback) => values[name] ?? env[variable] ?? fallback;
  const number = (name, variable, fallback, integer) => {
    const text = pick(name, variable, fallback);
    const value = Number(text);
    if (text.trim() === '' || !Number.isFinite(value) || value < 0 || (integer && !Number.isInteger(value))) {
      throw new UsageError(`--${name} (${variable}) must be a non-negative ${integer ? 'integer' : 'number'}`);
    }
    return value;
  };
  const opts = {
    help: values.help ?? false,
    httpUrl: pick('http-url', 'FRAMEWIRE_HTTP_URL', 'http://127.0.0.1:8001/frames'),
    redisUrl: pick('redis-url', 'FRAMEWIRE_REDIS_URL', 'redis://127.0.0.1:6379/0'),
    token: pick('token', 'FRAMEWIRE_TOKEN', ''),
    camera: pick('camera', 'FRAMEWIRE_CAMERA', 'cam0'),
    fps: number('fps', 'FRAMEWIRE_FPS', '10', false),
    count: number('count', 'FRAMEWIRE_COUNT', '0', true),
    timeoutMs: number('timeout', 'FRAMEWIRE_TIMEOUT', '2', false) * 1000,
    paths: positionals,
  };
  if (opts.help) return opts;
  if (!CAMERA.test(opts.camera)) {
    throw new UsageError('--camera (FRAMEWIRE_CAMERA) must match [A-Za-z0-9][A-Za-z0-9_.-]{0,63}');
  }
  if (!opts.httpUrl && !opts.redisUrl) throw new UsageError('both transports are disabled');
  if (opts.timeoutMs <= 0) throw new UsageError('--timeout (FRAMEWIRE_TIMEOUT) must be above 0');
  return opts;
}

/** The JPEG files named (a directory: its *.jpg and *.jpeg files by name), read once. */
function readJpegs(paths) {
  if (paths.length === 0) throw new UsageError('no JPEG file or directory given');
  const files = [];
  for (const path of paths) {
    if (statSync(path, { throwIfNoEntry: false })?.isDirectory()) {
      const names = readdirSync(path).filter((n) => /\.jpe?g$/i.test(n)).sort();
      if (names.length === 0) throw new UsageError(`no *.jpg or *.jpeg file in ${path}`);
      files.push(...names.map((n) => join(path, n)));
    } else {
      files.push(path);
    }
  }
  return files.map((file) => {
    let bytes;
    try {
      bytes = readFileSync(file);
    } catch (error) {
      throw new UsageError(`cannot read ${file}: ${error.code ?? error.message}`);
    }
    if (bytes.length < 4 || bytes[0] !== 0xff || bytes[1] !== 0xd8 || bytes[2] !== 0xff) {
      throw new UsageError(`${file} is not a JPEG`);
    }
    return bytes;
  });
}

/** A URL safe to print: any password (or lone user token) replaced by ***. */
function redact(url) {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = '***';
    else if (parsed.username) parsed.username = '***';
    return parsed.toString();
  } catch {
    return url.replace(/\/\/[^/@]*@/, '//***@');
  }
}

// Capture time: nanoseconds since the Unix epoch, as a BigInt (a Number cannot hold it
// exactly). The wall clock gives the epoch once; the monotonic clock gives the rest.
const EPOCH_NS = BigInt(Date.now()) * 1_000_000n;
const START_HR = process.hrtime.bigint();
const nowNs = () => EPOCH_NS + (process.hrtime.bigint() - START_HR);

class Refused extends Error {
  constructor(status, reason, detail) {
    super(`HTTP receiver refused the frame: ${status} ${reason}${detail ? ` (${detail})` : ''}`);
    this.status = status;
    this.reason = reason;
  }
}

/** POSTs frames to the HTTP receiver; fetch keeps the connection alive between them. */
class HttpTransport {
  constructor(url, token, timeoutMs) {
    this.name = 'http';
    this.url = url;
    this.token = token;
    this.timeoutMs = timeoutMs;
  }

  async start() {}

  async send(camera, seq, capturedNs, jpeg) {
    const headers = {
      'Content-Type': 'image/jpeg',
      'X-Framewire-Camera': camera,
      'X-Framewire-Seq': String(seq),
      'X-Framewire-Captured-Ns': capturedNs.toString(),
    };
    if (this.token) headers.Authorization = `Bearer ${this.token}`;
    const response = await fetch(this.url, {
      method: 'POST',
      headers,
      body: jpeg,
      signal: AbortSignal.timeout(this.timeoutMs),
    });
    if (response.status === 204 || response.ok) {
      await response.arrayBuffer(); // drain, so the connection is reused
      return;
    }
    let reason = `status_${response.status}`;
    let detail = '';
    try {
      const body = await response.json(); // {"error": "<reason>", "detail": "..."}
      reason = body.error ?? reason;
      detail = body.detail ?? '';
    } catch {
      // not JSON: keep the status as the reason
    }
    if (response.status >= 400 && response.status < 500) throw new Refused(response.status, reason, detail);
    throw new Error(`${response.status} ${reason}`); // 5xx, e.g. 503 stopping: try the next frame
  }

  async close() {}
}

/** XADDs frames to the camera's stream, trimmed to about MAXLEN entries. */
class RedisTransport {
  constructor(url, timeoutMs) {
    this.name = 'redis';
    this.client = createClient({
      url,
      // Fail a command at once while Redis is down instead of queueing frames in memory;
      // the client reconnects by itself with backoff.
      disableOfflineQueue: true,
      socket: {
        connectTimeout: timeoutMs,
        reconnectStrategy: (retries) => Math.min(100 * 2 ** retries, 2000),
      },
    });
    this.client.on('error', () => {}); // counted where a send fails; never crash on it
    this.timeoutMs = timeoutMs;
  }

  async start() {
    let timer;
    const timeout = new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no connection within ${this.timeoutMs} ms`)), this.timeoutMs);
    });
    try {
      const connecting = this.client.connect();
      connecting.catch(() => {}); // it fails in its own time once destroyed below
      await Promise.race([connecting, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  async send(camera, seq, capturedNs, jpeg) {
    await this.client.xAdd(
      STREAM_PREFIX + camera,
      '*',
      { seq: String(seq), captured_ns: capturedNs.toString(), jpeg }, // jpeg: a Buffer, sent as is
      { TRIM: { strategy: 'MAXLEN', strategyModifier: '~', threshold: MAXLEN } },
    );
  }

  async close() {
    if (this.client.isReady) await this.client.close().catch(() => this.client.destroy());
    else if (this.client.isOpen) this.client.destroy(); // still connecting: stop retrying
  }
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function main() {
  let opts;
  let jpegs;
  try {
    opts = options(process.argv.slice(2), process.env);
    if (opts.help) {
      console.log(USAGE);
      return 0;
    }
    jpegs = readJpegs(opts.paths);
  } catch (error) {
    if (!(error instanceof UsageError) && error.code?.startsWith('ERR_PARSE_ARGS') !== true) throw error;
    console.error(`error: ${error.message} (--help: usage)`);
    return 2;
  }

  const transports = [];
  if (opts.httpUrl) transports.push(new HttpTransport(opts.httpUrl, opts.token, opts.timeoutMs));
  if (opts.redisUrl) transports.push(new RedisTransport(opts.redisUrl, opts.timeoutMs));
  const where = { http: opts.httpUrl, redis: opts.redisUrl };
  const counts = Object.fromEntries(transports.map((t) => [t.name, { sent: 0, dropped: 0, errors: 0 }]));
  const lastError = {};
  let refused = null;
  let stopping = false;
  for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => (stopping = true));

  for (const transport of transports) {
    try {
      await transport.start();
    } catch (error) {
      console.error(`error: ${transport.name} ${redact(where[transport.name])}: ${error.message}`);
      await Promise.all(transports.map((t) => t.close()));
      return 3;
    }
  }
  const targets = transports.map((t) => `${t.name} ${redact(where[t.name])}`).join(', ');
  console.error(`sending ${jpegs.length} JPEG file(s) as camera ${opts.camera} at ${opts.fps || 'max'} fps to ${targets}`);

  const deliver = async (transport, frame) => {
    const count = counts[transport.name];
    try {
      await transport.send(opts.camera, frame.seq, frame.capturedNs, frame.jpeg);
      count.sent += 1;
    } catch (error) {
      if (error instanceof Refused) {
        refused ??= error;
        stopping = true;
        return;
      }
      count.errors += 1;
      const message = error.name === 'TimeoutError' ? 'timeout' : (error.cause?.code ?? error.cause?.message ?? error.message);
      if (lastError[transport.name] !== message) {
        console.error(`${transport.name}: send failed: ${message} (counted; going on)`);
        lastError[transport.name] = message;
      }
    }
  };
  // Per transport: the send in flight (a promise that goes on to send what arrived
  // meanwhile) and the newest frame waiting for it.
  const lanes = transports.map((transport) => ({ transport, inflight: null, waiting: null }));
  const offer = (lane, frame) => {
    if (lane.inflight) {
      if (lane.waiting) counts[lane.transport.name].dropped += 1; // replaced unsent
      lane.waiting = frame;
      return;
    }
    lane.inflight = (async () => {
      for (let next = frame; next; ) {
        await deliver(lane.transport, next);
        next = refused ? null : lane.waiting;
        lane.waiting = null;
      }
      lane.inflight = null;
    })();
  };
  const idle = () => Promise.all(lanes.map((lane) => lane.inflight));

  const intervalMs = opts.fps > 0 ? 1000 / opts.fps : 0;
  const started = performance.now();
  for (let i = 0; !stopping && (opts.count === 0 || i < opts.count); i += 1) {
    if (intervalMs > 0) {
      const due = started + i * intervalMs;
      const wait = due - performance.now();
      if (wait > 0) await sleep(wait);
      if (stopping) break;
    } else {
      await idle(); // as fast as possible: one frame at a time per transport
    }
    const frame = { seq: i + 1, capturedNs: nowNs(), jpeg: jpegs[i % jpegs.length] };
    for (const lane of lanes) offer(lane, frame);
  }
  await idle(); // the newest frame reaches every transport before we stop
  await Promise.all(transports.map((t) => t.close()));

  const summary = { camera: opts.camera, ...counts };
  if (refused) {
    summary.refused = { status: refused.status, reason: refused.reason };
    console.error(`error: ${refused.message}`);
  }
  console.log(JSON.stringify(summary));
  if (refused) return 1;
  if (Object.values(counts).some((c) => c.sent === 0 && c.errors > 0)) return 3;
  return 0;
}

process.exitCode = await main();
