// Node.js baseline for `make bench`: a plain socket.io v4 server that the bench runs side by side
// with meetings-signalling. It speaks the relay subset of docs/signalling.md with the same events
// and acks (join-room, leave-room, offer, answer, ice-candidate, chat-message, unknown_event) and
// keeps everything in memory in one process, the way the Node monolith did. It is a reference,
// not a service: the JWT's signature is NOT verified (its payload is only decoded for `sub`), and
// there are no meetings, roles, rate limits or Redis.
//
// With CHAT_DATABASE_URL set, chat lines are also stored in Postgres (schema CHAT_SCHEMA) before
// they are acknowledged, the way meetings-signalling stores them: CHAT_WRITERS writers, and the
// lines that arrive while a writer's batch is being written go together in its next INSERT.
//
//   PORT=3001 node server.mjs   # prints "listening 3001" once it accepts connections
import { randomUUID } from "node:crypto";
import { createServer } from "node:http";
import pg from "pg";
import { Server } from "socket.io";

const port = Number.parseInt(process.env.PORT ?? "", 10);
if (!Number.isInteger(port) || port < 0 || port > 65535) {
  console.error("server.mjs: PORT is required (the port to listen on, on 127.0.0.1)");
  process.exit(2);
}

const CHAT_MAX_CHARS = 2000;
const CHAT_REPLAY = 50;
const CHAT_MAX_BATCH = 256;
const KNOWN = new Set(["join-room", "leave-room", "offer", "answer", "ice-candidate", "chat-message"]);

// Group commit into Postgres, as meetings-signalling does it: a line is answered once the INSERT
// holding it is committed; CHAT_WRITERS lanes (default 4), each with one INSERT in flight, and a
// meeting's lines always in the same lane, so they are committed in order.
class ChatStore {
  constructor(url, schema, lanes) {
    if (!/^[a-z_][a-z0-9_]*$/.test(schema)) throw new Error(`CHAT_SCHEMA: not a plain identifier: ${schema}`);
    if (!Number.isInteger(lanes) || lanes < 1 || lanes > 32) throw new Error("CHAT_WRITERS: expected 1 to 32");
    this.pool = new pg.Pool({ connectionString: url, max: lanes });
    this.table = `"${schema}".chat_messages`;
    this.schema = schema;
    this.lanes = Array.from({ length: lanes }, () => ({ queue: [], writing: false }));
  }

  async migrate() {
    await this.pool.query(`CREATE SCHEMA IF NOT EXISTS "${this.schema}"`);
    await this.pool.query(`CREATE TABLE IF NOT EXISTS ${this.table} (
      id TEXT PRIMARY KEY, meeting_id TEXT NOT NULL, user_id TEXT NOT NULL, body TEXT NOT NULL,
      sent_at TIMESTAMPTZ NOT NULL)`);
    await this.pool.query(`CREATE INDEX IF NOT EXISTS chat_messages_meeting ON ${this.table} (meeting_id, sent_at)`);
  }

  store(msg) {
    let h = 0;
    for (let i = 0; i < msg.meetingId.length; i++) h = (h * 31 + msg.meetingId.charCodeAt(i)) | 0;
    const lane = this.lanes[Math.abs(h) % this.lanes.length];
    return new Promise((resolve, reject) => {
      lane.queue.push({ msg, resolve, reject });
      if (!lane.writing) this.flush(lane);
    });
  }

  async flush(lane) {
    lane.writing = true;
    while (lane.queue.length > 0) {
      const batch = lane.queue.splice(0, CHAT_MAX_BATCH);
      const column = (f) => batch.map((p) => f(p.msg));
      try {
        await this.pool.query(
          `INSERT INTO ${this.table} (id, meeting_id, user_id, body, sent_at)
           SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::timestamptz[])`,
          [column((m) => m.id), column((m) => m.meetingId), column((m) => m.userId), column((m) => m.text),
            column((m) => m.sentAt)],
        );
        for (const p of batch) p.resolve();
      } catch (err) {
        for (const p of batch) p.reject(err);
      }
    }
    lane.writing = false;
  }
}

const chatStore = process.env.CHAT_DATABASE_URL
  ? new ChatStore(process.env.CHAT_DATABASE_URL, process.env.CHAT_SCHEMA ?? "node_signalling",
    Number(process.env.CHAT_WRITERS ?? "4"))
  : null;

const httpServer = createServer();
const io = new Server(httpServer, {
  path: "/socket.io",
  maxHttpBufferSize: 65536,
  transports: ["websocket", "polling"],
});

const rooms = new Map(); // meetingId -> { participants: Map<socketId, participant>, messages: [] }
const userSockets = new Map(); // userId -> the user's one live socket
let nextMessageId = 1;

class Refusal extends Error {
  constructor(code, message) {
    super(message);
    this.code = code;
  }
}

// `sub` of the token's payload; the signature is deliberately not checked (see the header).
function userIdFromToken(token) {
  if (typeof token !== "string") return null;
  const parts = token.split(".");
  if (parts.length !== 3) return null;
  try {
    const payload = JSON.parse(Buffer.from(parts[1], "base64url").toString("utf8"));
    return typeof payload.sub === "string" && payload.sub !== "" ? payload.sub : null;
  } catch {
    return null;
  }
}

const participantsOf = (meetingId) => [...(rooms.get(meetingId)?.participants.values() ?? [])];

function currentRoom(socket) {
  const meetingId = socket.data.meetingId;
  if (!meetingId || !rooms.has(meetingId)) throw new Refusal("not_in_room", "join-room first");
  return meetingId;
}

function removeFromRoom(socket, reason) {
  const meetingId = socket.data.meetingId;
  const room = meetingId && rooms.get(meetingId);
  socket.data.meetingId = null;
  if (!room) return;
  room.participants.delete(socket.id);
  socket.leave(meetingId);
  if (room.participants.size === 0) rooms.delete(meetingId);
  io.to(meetingId).emit("room-users-updated", {
    meetingId, participants: participantsOf(meetingId), left: socket.data.userId, reason,
  });
}

const handlers = {
  "join-room"(socket, body) {
    const { meetingId, name, audio, video } = body ?? {};
    if (typeof meetingId !== "string" || meetingId === "") {
      throw new Refusal("invalid_payload", "join-room: meetingId must be a non-empty string");
    }
    if (socket.data.meetingId && socket.data.meetingId !== meetingId) removeFromRoom(socket, "left");
    let room = rooms.get(meetingId);
    if (!room) rooms.set(meetingId, (room = { participants: new Map(), messages: [] }));
    socket.join(meetingId);
    socket.data.meetingId = meetingId;
    room.participants.set(socket.id, {
      userId: socket.data.userId, socketId: socket.id, role: "participant",
      name: typeof name === "string" ? name : socket.data.userId,
      audio: audio !== false, video: video !== false, connected: true,
      joinedAt: new Date().toISOString(),
    });
    const participants = participantsOf(meetingId);
    io.to(meetingId).emit("room-users-updated", { meetingId, participants });
    return {
      meetingId, participants, recording: { active: false }, messages: room.messages,
      role: "participant", socketId: socket.id,
    };
  },
  "leave-room"(socket) {
    const meetingId = currentRoom(socket);
    removeFromRoom(socket, "left");
    return { meetingId };
  },
  offer: (socket, body) => relay(socket, "offer", body, "sdp"),
  answer: (socket, body) => relay(socket, "answer", body, "sdp"),
  "ice-candidate": (socket, body) => relay(socket, "ice-candidate", body, "candidate"),
  "chat-message"(socket, body) {
    const text = body?.text;
    if (typeof text !== "string" || text.length < 1 || text.length > CHAT_MAX_CHARS) {
      throw new Refusal("invalid_payload", `chat-message: text must be 1 to ${CHAT_MAX_CHARS} characters`);
    }
    const meetingId = currentRoom(socket);
    const msg = {
      id: chatStore ? randomUUID() : nextMessageId++, meetingId, userId: socket.data.userId, text,
      sentAt: new Date().toISOString(),
    };
    const deliver = () => {
      const room = rooms.get(meetingId);
      if (room) {
        room.messages.push(msg);
        if (room.messages.length > CHAT_REPLAY) room.messages.shift();
      }
      io.to(meetingId).emit("chat-message", msg);
      return msg;
    };
    return chatStore ? chatStore.store(msg).then(deliver) : deliver();
  },
};

function relay(socket, event, body, field) {
  const target = body?.target;
  const value = body?.[field];
  if (typeof target !== "string" || target === "") {
    throw new Refusal("invalid_payload", `${event}: target must be a socket id`);
  }
  const valid = field === "sdp" ? typeof value === "string"
    : typeof value === "string" || (typeof value === "object" && value !== null);
  if (!valid) throw new Refusal("invalid_payload", `${event}: ${field} is missing or malformed`);
  const meetingId = currentRoom(socket);
  if (target === socket.id) throw new Refusal("invalid_target", `${event}: cannot signal yourself`);
  if (!rooms.get(meetingId).participants.has(target)) {
    throw new Refusal("target_not_in_room", `${event}: target is not in your room`);
  }
  io.to(target).emit(event, { from: socket.id, fromUserId: socket.data.userId, meetingId, [field]: value });
  return { delivered: true };
}

function respond(socket, event, ack, fn) {
  const refuse = (err) => {
    const code = err instanceof Refusal ? err.code : "internal";
    if (!(err instanceof Refusal)) console.error(`${event}:`, err);
    const error = { event, code, message: err instanceof Refusal ? err.message : "internal error" };
    socket.emit("error", error);
    if (ack) ack({ ok: false, error });
  };
  try {
    const data = fn();
    if (data instanceof Promise) {
      data.then((d) => ack && ack({ ok: true, data: d }), refuse);
    } else if (ack) {
      ack({ ok: true, data });
    }
  } catch (err) {
    refuse(err);
  }
}

io.use((socket, next) => {
  const userId = userIdFromToken(socket.handshake.auth?.token);
  if (!userId) return next(new Error("unauthorized: token"));
  socket.data.userId = userId;
  next();
});

io.on("connection", (socket) => {
  const { userId } = socket.data;
  const previous = userSockets.get(userId);
  userSockets.set(userId, socket);
  if (previous && previous.id !== socket.id) {
    previous.emit("takeover-connection", { reason: "another tab or device took over this session", socketId: socket.id });
    previous.disconnect(true);
  }

  for (const [event, handler] of Object.entries(handlers)) {
    socket.on(event, (...args) => {
      const ack = typeof args.at(-1) === "function" ? args.pop() : null;
      respond(socket, event, ack, () => handler(socket, args[0]));
    });
  }
  socket.onAny((event, ...args) => {
    if (KNOWN.has(event)) return;
    const ack = typeof args.at(-1) === "function" ? args.at(-1) : null;
    respond(socket, event, ack, () => {
      throw new Refusal("unknown_event", `unknown event: ${event}`);
    });
  });

  socket.on("disconnect", () => {
    try {
      removeFromRoom(socket, "disconnected");
    } catch (err) {
      console.error("disconnect:", err);
    }
    if (userSockets.get(userId) === socket) userSockets.delete(userId);
  });
});

process.on("uncaughtException", (err) => console.error("uncaught:", err));
process.on("unhandledRejection", (err) => console.error("unhandled rejection:", err));

function shutdown() {
  io.close(() => process.exit(0));
  setTimeout(() => process.exit(0), 2000).unref();
}
process.once("SIGTERM", shutdown);
process.once("SIGINT", shutdown);

if (chatStore) {
  try {
    await chatStore.migrate();
  } catch (err) {
    console.error(`server.mjs: CHAT_DATABASE_URL: ${err.message}`);
    process.exit(1);
  }
}
httpServer.listen(port, "127.0.0.1", () => {
  console.log(`listening ${httpServer.address().port}`);
});
