// The Engine.IO heartbeat with the real socket.io-client (v4) across the polling -> WebSocket
// upgrade. The Rust test starts meetings-signalling with a short ping interval and runs:
//
//   node signal-heartbeat.mjs '<json>'
//
// with {url, token, pingInterval}. The client opens on polling (the default), upgrades, and
// must stay connected while the server keeps pinging over the WebSocket: a pong that did not
// reach the heartbeat after the upgrade would drop it within an interval and a timeout.
// Every check prints one line; the exit code is the number of failed checks.
import { io } from "socket.io-client";

const cfg = JSON.parse(process.argv[2]);
let failed = 0;
const check = (name, ok, detail = "") => {
  console.log(`${ok ? "ok" : "FAIL"} ${name}${detail ? ` (${detail})` : ""}`);
  if (!ok) failed += 1;
};
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const socket = io(cfg.url, { auth: { token: cfg.token }, reconnection: false, forceNew: true, timeout: 5000 });
let disconnected = null;
socket.on("disconnect", (reason) => { disconnected = reason; });
// The engine is created with the socket; the upgrade may complete before `connect`.
const engine = socket.io.engine;
const initial = engine.transport.name;
const upgraded = new Promise((resolve) => {
  engine.once("upgrade", () => resolve(true));
  setTimeout(() => resolve(false), 5000);
});
try {
  const ok = await new Promise((resolve) => {
    socket.once("connect", () => resolve(true));
    socket.once("connect_error", (e) => resolve(String(e)));
  });
  check("connects", ok === true, String(ok));
  check("opens on polling", initial === "polling", initial);
  check("upgrades to websocket", (await upgraded) && engine.transport.name === "websocket", engine.transport.name);
  let pings = 0;
  engine.on("ping", () => { pings += 1; });
  // Twelve intervals: every ping answered, the connection kept.
  await sleep(cfg.pingInterval * 12);
  check("pinged over the websocket", pings >= 5, `${pings} pings`);
  check("stays connected", socket.connected && disconnected === null, `disconnect: ${disconnected}`);
} catch (e) {
  check("no exception", false, String(e));
} finally {
  socket.close();
}
if (failed === 0) console.log("all checks passed");
process.exit(failed);
