// Drives meetings-signalling with the real socket.io-client (v4), as the frontends do, following
// docs/signalling.md. The Rust end-to-end tests start the platform, book a meeting and run:
//
//   node signal-scenario.mjs '<json>'
//
// with {urlA, urlB, tokenMentor, tokenStudent, tokenStranger, meetingId}: the mentor's first
// tab connects to urlA, the student to urlB (the same gateway, or two signalling replicas).
// Every check prints one line; the exit code is the number of failed checks.
import { io } from "socket.io-client";

const cfg = JSON.parse(process.argv[2]);
let failed = 0;
const check = (name, ok, detail = "") => {
  console.log(`${ok ? "ok" : "FAIL"} ${name}${detail ? ` (${detail})` : ""}`);
  if (!ok) failed += 1;
};

const connect = (url, token, opts = {}) =>
  io(url, { auth: { token }, reconnection: false, forceNew: true, timeout: 5000, ...opts });

// Resolves with the first `event` payload matching `pred`, or null after `ms`.
const next = (socket, event, pred = () => true, ms = 5000) =>
  new Promise((resolve) => {
    const timer = setTimeout(() => { socket.off(event, on); resolve(null); }, ms);
    const on = (data) => { if (pred(data)) { clearTimeout(timer); socket.off(event, on); resolve(data); } };
    socket.on(event, on);
  });
const connected = (s) =>
  new Promise((resolve) => {
    if (s.connected) return resolve(true);
    s.once("connect", () => resolve(true));
    s.once("connect_error", (e) => resolve(e));
  });
const ack = (s, event, payload) => s.timeout(5000).emitWithAck(event, payload).catch((e) => ({ ok: false, error: { code: "timeout", message: String(e) } }));

const meetingId = cfg.meetingId;
const all = [];
try {
  // --- handshake ---------------------------------------------------------------------------
  const anon = connect(cfg.urlA, "not-a-token");
  all.push(anon);
  const refused = await connected(anon);
  check("a bad token is refused at the handshake", refused instanceof Error && /unauthorized/.test(refused.message), refused?.message);

  const mentor = connect(cfg.urlA, cfg.tokenMentor, { transports: ["websocket"] });
  const student = connect(cfg.urlB, cfg.tokenStudent); // polling first, then the upgrade
  all.push(mentor, student);
  check("the mentor connects", (await connected(mentor)) === true);
  check("the student connects", (await connected(student)) === true);

  // --- joining -------------------------------------------------------------------------------
  const mj = await ack(mentor, "join-room", { meetingId, name: "Mentor" });
  check("the mentor joins the room", mj.ok === true && mj.data.role === "mentor", JSON.stringify(mj.error ?? ""));
  const bothIn = next(mentor, "room-users-updated", (d) => d.participants.length === 2);
  const sj = await ack(student, "join-room", { meetingId, name: "Student" });
  check("the student joins the room", sj.ok === true && sj.data.role === "student", JSON.stringify(sj.error ?? ""));
  check("the mentor is told the room has two participants", (await bothIn) !== null);

  // --- offer / answer / ICE, to the named socket only ------------------------------------------
  const offerAt = next(student, "offer");
  const offered = await ack(mentor, "offer", { target: student.id, sdp: { type: "offer", sdp: "v=0 offer" }, from: "spoofed", fromUserId: "spoofed" });
  const offer = await offerAt;
  check("the offer is relayed to the student", offered.ok && offer?.from === mentor.id && offer?.sdp?.sdp === "v=0 offer", JSON.stringify(offer));
  check("the relayed offer names its meeting and sender (not as the client claimed) and drops target", offer?.meetingId === cfg.meetingId && typeof offer?.fromUserId === "string" && offer.fromUserId !== "spoofed" && !("target" in offer), JSON.stringify(offer));
  const answerAt = next(mentor, "answer");
  await ack(student, "answer", { target: mentor.id, sdp: { type: "answer", sdp: "v=0 answer" } });
  const answer = await answerAt;
  check("the answer is relayed to the mentor", answer?.from === student.id && answer?.sdp?.type === "answer");
  const iceAt = next(student, "ice-candidate");
  await ack(mentor, "ice-candidate", { target: student.id, candidate: { candidate: "candidate:1 1 udp 1 127.0.0.1 9 typ host", sdpMid: "0" } });
  const ice = await iceAt;
  check("the ICE candidate is relayed to the student", ice?.candidate?.sdpMid === "0");

  // --- bad input: an error, never a relay, never a crash ----------------------------------------
  const stray = next(student, "offer", () => true, 1000);
  const wrongTarget = await ack(mentor, "offer", { target: "no-such-socket", sdp: { type: "offer", sdp: "x" } });
  check("an offer to a socket outside the room is refused", wrongTarget.ok === false && wrongTarget.error.code === "target_not_in_room");
  const unknown = await ack(mentor, "format-disk", {});
  check("an unknown event is refused", unknown.ok === false && unknown.error.code === "unknown_event");
  const malformed = await ack(mentor, "join-room", { meetingId: 42 });
  check("a malformed payload is refused", malformed.ok === false && malformed.error.code === "invalid_payload");
  const noSdp = await ack(mentor, "offer", { target: student.id });
  check("an offer without sdp is refused", noSdp.ok === false && noSdp.error.code === "invalid_payload");
  const badTarget = await ack(mentor, "offer", { target: 42, sdp: { type: "offer", sdp: "x" } });
  check("an offer whose target is not a socket id is refused", badTarget.ok === false && badTarget.error.code === "invalid_payload");
  const notObject = await ack(mentor, "offer", "v=0 offer");
  check("an offer whose payload is not an object is refused", notObject.ok === false && notObject.error.code === "invalid_payload", JSON.stringify(notObject));
  check("nothing was relayed for the refused events", (await stray) === null);

  // --- a stranger ------------------------------------------------------------------------------
  const stranger = connect(cfg.urlA, cfg.tokenStranger, { transports: ["polling"] });
  all.push(stranger);
  check("a stranger can connect", (await connected(stranger)) === true);
  const errorEvent = next(stranger, "error");
  const sjoin = await ack(stranger, "join-room", { meetingId });
  check("a stranger cannot join the room", sjoin.ok === false && sjoin.error.code === "forbidden", JSON.stringify(sjoin));
  check("the refusal also comes as an error event", (await errorEvent)?.event === "join-room");
  const sOffer = await ack(stranger, "offer", { target: student.id, sdp: { type: "offer", sdp: "x" } });
  check("a stranger cannot signal a participant", sOffer.ok === false && sOffer.error.code === "not_in_room");
  // The other way round: the stranger is connected (to the mentor's replica) but not in the room.
  const strayToStranger = next(stranger, "offer", () => true, 1000);
  const toStranger = await ack(mentor, "offer", { target: stranger.id, sdp: { type: "offer", sdp: "x" } });
  check("an offer to a connected socket outside the room is refused", toStranger.ok === false && toStranger.error.code === "target_not_in_room", JSON.stringify(toStranger));
  check("the socket outside the room receives nothing", (await strayToStranger) === null);

  // --- chat ------------------------------------------------------------------------------------
  const chatAtStudent = next(student, "chat-message");
  const sent = await ack(mentor, "chat-message", { text: "hello from the mentor" });
  check("a chat message is accepted", sent.ok === true && typeof sent.data.id === "string");
  check("the chat message reaches the student", (await chatAtStudent)?.text === "hello from the mentor");
  const tooLong = await ack(mentor, "chat-message", { text: "x".repeat(5000) });
  check("an oversized chat message is refused", tooLong.ok === false && tooLong.error.code === "invalid_payload");

  // --- takeover: a second tab of the mentor, on the other URL -----------------------------------
  const toldFirst = next(mentor, "takeover-connection");
  const firstGone = new Promise((r) => mentor.once("disconnect", (reason) => r(reason)));
  const peerBack = next(student, "peer-reconnected", (d) => d.userId && d.previousSocketId === mentor.id);
  const tab2 = connect(cfg.urlB, cfg.tokenMentor, { transports: ["websocket"] });
  all.push(tab2);
  const restoredTab = next(tab2, "room-restored");
  check("the second tab connects", (await connected(tab2)) === true);
  check("the first tab is told it was taken over", (await toldFirst) !== null);
  check("the first tab is disconnected", typeof (await firstGone) === "string");
  const rt = await restoredTab;
  check("the second tab is restored into the room", rt?.meetingId === meetingId);
  check("chat is replayed to the second tab", rt?.messages?.some((m) => m.text === "hello from the mentor"), JSON.stringify(rt?.messages));
  check("the student is told the mentor came back", (await peerBack) !== null);
  const offer2At = next(student, "offer");
  await ack(tab2, "offer", { target: student.id, sdp: { type: "offer", sdp: "v=0 again" } });
  check("the second tab signals the student", (await offer2At)?.from === tab2.id);

  // --- a dropped student reconnects on the other URL --------------------------------------------
  const dropped = next(tab2, "peer-disconnected");
  student.disconnect();
  check("the mentor is told the student dropped", (await dropped) !== null);
  const student2 = connect(cfg.urlA, cfg.tokenStudent, { transports: ["websocket"] });
  all.push(student2);
  const restored = next(student2, "room-restored");
  const back = next(tab2, "peer-reconnected");
  check("the student reconnects", (await connected(student2)) === true);
  const rs = await restored;
  check("the student is restored into its room", rs?.meetingId === meetingId && rs.participants.length === 2, JSON.stringify(rs?.participants));
  check("chat is replayed to the reconnected student", rs?.messages?.some((m) => m.text === "hello from the mentor"));
  const pb = await back;
  check("the mentor is told the student is back", pb?.socketId === student2.id);
  const answer2At = next(tab2, "answer");
  await ack(student2, "answer", { target: tab2.id, sdp: { type: "answer", sdp: "v=0 answer again" } });
  check("signalling works after the reconnect", (await answer2At)?.from === student2.id);

  // --- online users and the end of the meeting --------------------------------------------------
  const online = await ack(tab2, "get-online-users", {});
  check("online users lists both participants", online.ok && online.data.users.length >= 2, JSON.stringify(online.data));
  const endedAtStudent = next(student2, "meeting-ended");
  const ended = await ack(tab2, "end-meeting", { meetingId });
  check("the mentor ends the meeting", ended.ok === true, JSON.stringify(ended.error ?? ""));
  check("the student is told the meeting ended", (await endedAtStudent)?.meetingId === meetingId);
  const rejoin = await ack(student2, "join-room", { meetingId });
  check("an ended meeting cannot be joined", rejoin.ok === false && rejoin.error.code === "failed_precondition");
} catch (e) {
  check("scenario ran to the end", false, String(e?.stack ?? e));
} finally {
  for (const s of all) s.disconnect();
}
console.log(`signalling: ${failed === 0 ? "all checks passed" : `${failed} checks failed`}`);
process.exit(failed);
