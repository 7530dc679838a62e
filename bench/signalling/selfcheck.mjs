// Self-check of the Node.js baseline (server.mjs) with the real socket.io-client: starts the
// server on a free port, then checks the handshake, join-room, an offer relayed to the right
// socket, chat, the target_not_in_room / unknown_event refusals, takeover and a clean SIGTERM exit.
// With CHAT_DATABASE_URL set, the server stores chat in Postgres (a schema of its own, dropped at
// the end) and the check also finds the line there. Exits 0 on success, 1 with a message on
// failure; either way its last line is `selfcheck: N passed, M failed` (make test adds it up).
//
//   (cd tests/browser && npm ci)   # socket.io-client comes from the browser tests' node_modules
//   (cd bench/signalling && npm ci)
//   node bench/signalling/selfcheck.mjs
//   CHAT_DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres node bench/signalling/selfcheck.mjs
import { spawn } from "node:child_process";
import { createServer } from "node:net";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";
import path from "node:path";
import pg from "pg";

const here = path.dirname(fileURLToPath(import.meta.url));
let io;
try {
  ({ io } = createRequire(path.join(here, "../../tests/browser/package.json"))("socket.io-client"));
} catch {
  console.error("selfcheck: socket.io-client not found; run `npm ci` in tests/browser first");
  process.exit(1);
}

const fakeJwt = (sub) =>
  [{ alg: "none", typ: "JWT" }, { sub }].map((p) => Buffer.from(JSON.stringify(p)).toString("base64url")).join(".") + ".sig";

let passed = 0;
function check(cond, what) {
  if (!cond) throw new Error(`check failed: ${what}`);
  passed += 1;
  console.log(`ok - ${what}`);
}

function once(socket, event, ms = 5000) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`timed out waiting for ${event}`)), ms);
    socket.once(event, (arg) => {
      clearTimeout(timer);
      resolve(arg);
    });
  });
}

const freePort = () =>
  new Promise((resolve, reject) => {
    const srv = createServer().once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });

let server;
const clients = [];
const databaseUrl = process.env.CHAT_DATABASE_URL;
const schema = `selfcheck_node_${process.pid}`;
function connect(url, token, transports) {
  const socket = io(url, { path: "/socket.io", auth: token ? { token } : {}, transports, reconnection: false, forceNew: true });
  clients.push(socket);
  return socket;
}

async function main() {
  const port = await freePort();
  server = spawn(process.execPath, [path.join(here, "server.mjs")], {
    env: { ...process.env, PORT: String(port), CHAT_SCHEMA: schema },
    stdio: ["ignore", "pipe", "inherit"],
  });
  const firstLine = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("server did not print `listening <port>` in 10 s")), 10000);
    let buf = "";
    server.stdout.on("data", (chunk) => {
      buf += chunk;
      if (buf.includes("\n")) {
        clearTimeout(timer);
        resolve(buf.split("\n")[0]);
      }
    });
    server.once("exit", (code) => reject(new Error(`server exited early with ${code}`)));
  });
  check(firstLine === `listening ${port}`, `server printed "listening ${port}"`);
  const url = `http://127.0.0.1:${port}`;

  const anon = connect(url, null, ["websocket"]);
  const refused = await once(anon, "connect_error");
  check(refused.message.startsWith("unauthorized:"), `no token is refused (${refused.message})`);

  const c1 = connect(url, fakeJwt("u1"), ["websocket"]);
  const c2 = connect(url, fakeJwt("u2"), ["polling", "websocket"]);
  await Promise.all([once(c1, "connect"), once(c2, "connect")]);

  const j1 = await c1.timeout(5000).emitWithAck("join-room", { meetingId: "m1", name: "one" });
  check(j1.ok && j1.data.meetingId === "m1" && j1.data.socketId === c1.id, "u1 joined m1");
  const updated = once(c1, "room-users-updated");
  const j2 = await c2.timeout(5000).emitWithAck("join-room", { meetingId: "m1", name: "two" });
  check(j2.ok && j2.data.participants.length === 2 && j2.data.role === "participant", "u2 joined m1 and sees 2 participants");
  check((await updated).participants.length === 2, "u1 got room-users-updated with 2 participants");

  const offered = once(c2, "offer");
  const offerAck = await c1.timeout(5000).emitWithAck("offer", { target: c2.id, sdp: "v=0 fake" });
  check(offerAck.ok && offerAck.data.delivered === true, "offer acked { delivered: true }");
  const offer = await offered;
  check(offer.from === c1.id && offer.fromUserId === "u1" && offer.meetingId === "m1" && offer.sdp === "v=0 fake",
    "u2 received the offer from u1's socket");

  const chats = Promise.all([once(c1, "chat-message"), once(c2, "chat-message")]);
  const chatAck = await c1.timeout(5000).emitWithAck("chat-message", { text: "hello" });
  check(chatAck.ok && chatAck.data.text === "hello" && chatAck.data.userId === "u1", "chat-message acked with the stored message");
  check((await chats).every((m) => m.text === "hello" && m.meetingId === "m1"), "chat-message reached both clients");
  if (databaseUrl) {
    const db = new pg.Client({ connectionString: databaseUrl });
    await db.connect();
    try {
      const { rows } = await db.query(`SELECT meeting_id, user_id, body FROM "${schema}".chat_messages WHERE id = $1`, [chatAck.data.id]);
      check(rows.length === 1 && rows[0].meeting_id === "m1" && rows[0].user_id === "u1" && rows[0].body === "hello",
        "the acknowledged chat line is stored in Postgres");
    } finally {
      await db.end();
    }
  }

  const errorEvent = once(c1, "error");
  const bogus = await c1.timeout(5000).emitWithAck("offer", { target: "no-such-socket", sdp: "v=0" });
  check(!bogus.ok && bogus.error.code === "target_not_in_room" && bogus.error.event === "offer", "offer to a bogus target: target_not_in_room");
  check((await errorEvent).code === "target_not_in_room", "the refusal also came as an error event");

  const unknown = await c1.timeout(5000).emitWithAck("no-such-event", {});
  check(!unknown.ok && unknown.error.code === "unknown_event", "unknown event: unknown_event");

  const takeover = once(c1, "takeover-connection");
  const dropped = once(c1, "disconnect");
  const left = once(c2, "room-users-updated");
  const c1b = connect(url, fakeJwt("u1"), ["websocket"]);
  await once(c1b, "connect");
  check((await takeover).socketId === c1b.id, "a second u1 socket got takeover-connection sent to the first");
  check((await dropped) === "io server disconnect", "the first u1 socket was disconnected by the server");
  check((await left).left === "u1", "u2 saw u1's old socket leave");

  for (const c of clients) c.close();
  const exited = new Promise((resolve) => server.once("exit", (code, signal) => resolve({ code, signal })));
  server.kill("SIGTERM");
  const { code } = await exited;
  check(code === 0, "server exited 0 on SIGTERM");
}

async function dropSchema() {
  if (!databaseUrl) return;
  const db = new pg.Client({ connectionString: databaseUrl });
  try {
    await db.connect();
    await db.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  } catch (err) {
    console.error(`selfcheck: could not drop schema ${schema}: ${err.message}`);
  } finally {
    await db.end().catch(() => {});
  }
}

main().then(
  async () => {
    await dropSchema();
    // The line scripts/test-summary.sh adds up.
    console.log(`selfcheck: ${passed} passed, 0 failed`);
    process.exit(0);
  },
  async (err) => {
    console.error(`selfcheck: FAILED: ${err.message}`);
    console.log(`selfcheck: ${passed} passed, 1 failed`);
    for (const c of clients) c.close();
    server?.kill("SIGTERM");
    await dropSchema();
    process.exit(1);
  },
);
