// The events docs/signalling.md lists with no payload (start-recording, stop-recording,
// get-online-users, timer-sync, ping-room), sent with the real socket.io-client (v4) exactly as
// the docs show: with no argument at all, and with an empty object, each with and without an
// acknowledgement. The Rust end-to-end test starts the platform, books a meeting and runs:
//
//   node signal-no-payload.mjs '<json>'
//
// with {url, tokenMentor, meetingId}. Every check prints one line; the exit code is the number
// of failed checks.
import { io } from "socket.io-client";

const cfg = JSON.parse(process.argv[2]);
let failed = 0;
const check = (name, ok, detail = "") => {
  console.log(`${ok ? "ok" : "FAIL"} ${name}${detail ? ` (${detail})` : ""}`);
  if (!ok) failed += 1;
};

// Resolves with the first `event` payload, or null after `ms`.
const next = (socket, event, ms = 3000) =>
  new Promise((resolve) => {
    const timer = setTimeout(() => { socket.off(event, on); resolve(null); }, ms);
    const on = (data) => { clearTimeout(timer); socket.off(event, on); resolve(data); };
    socket.on(event, on);
  });

const socket = io(cfg.url, { auth: { token: cfg.tokenMentor }, reconnection: false, forceNew: true, transports: ["websocket"] });
const errors = [];
socket.on("error", (e) => errors.push(e));
try {
  await new Promise((resolve, reject) => {
    socket.once("connect", resolve);
    socket.once("connect_error", reject);
  });
  const joined = await socket.timeout(5000).emitWithAck("join-room", { meetingId: cfg.meetingId });
  check("the mentor joins the room", joined.ok === true, JSON.stringify(joined.error ?? ""));

  // What each event answers with (its ack `data`), and the event it also sends back, if any.
  const events = {
    "start-recording": { reply: (d) => d.meetingId === cfg.meetingId && typeof d.at === "string", told: "recording-started" },
    "stop-recording": { reply: (d) => d.meetingId === cfg.meetingId && typeof d.at === "string", told: "recording-stopped" },
    "get-online-users": { reply: (d) => Array.isArray(d.users) && d.users.length >= 1, told: "online-users" },
    "timer-sync": { reply: (d) => d.meetingId === cfg.meetingId && typeof d.remainingSeconds === "number" },
    "ping-room": { reply: (d) => d.meetingId === cfg.meetingId && typeof d.serverTime === "string" },
  };
  for (const [event, { reply, told }] of Object.entries(events)) {
    // With an acknowledgement: no argument, then an empty object.
    for (const [how, send] of [
      ["no argument", () => socket.timeout(5000).emitWithAck(event)],
      ["{}", () => socket.timeout(5000).emitWithAck(event, {})],
    ]) {
      const r = await send().catch((e) => ({ ok: false, error: { code: "timeout", message: String(e) } }));
      check(`${event} with ${how} and an ack is accepted`, r.ok === true && reply(r.data), JSON.stringify(r));
    }
    // Without one: the effect (or, for events that only answer, no error) is what shows it.
    for (const [how, send] of [
      ["no argument", () => socket.emit(event)],
      ["{}", () => socket.emit(event, {})],
    ]) {
      const before = errors.length;
      const seen = told ? next(socket, told) : null;
      send();
      // A ping-room with an ack after it, and a pause: time for a refusal to arrive.
      await socket.timeout(5000).emitWithAck("ping-room").catch(() => null);
      await new Promise((r) => setTimeout(r, 300));
      const effect = told ? await seen : true;
      check(`${event} with ${how} and no ack is accepted`, errors.length === before && effect !== null,
        JSON.stringify(errors.slice(before)));
    }
  }
  // A payload where none belongs is still refused.
  const extra = await socket.timeout(5000).emitWithAck("start-recording", { meetingId: cfg.meetingId });
  check("start-recording with a payload is refused", extra.ok === false && extra.error.code === "invalid_payload", JSON.stringify(extra));
} catch (e) {
  check("the script ran to the end", false, String(e?.stack ?? e));
}
socket.close();
console.log(failed === 0 ? "all checks passed" : `${failed} checks failed`);
process.exit(failed);
