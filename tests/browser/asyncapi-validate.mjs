// Validates an AsyncAPI document with the real AsyncAPI parser (@asyncapi/parser: the JSON
// Schema of the specification plus its Spectral rules). Usage: node asyncapi-validate.mjs <url>
// Prints one JSON line: {errors, warnings, channels, operations} where channels maps each
// channel's address to its operations' actions, services and queues, as the parser read them.
import { Parser, DiagnosticSeverity } from "@asyncapi/parser";

const url = process.argv[2];
const text = url.startsWith("http") ? await (await fetch(url)).text() : (await import("node:fs")).readFileSync(url, "utf8");
const parser = new Parser();
const { document, diagnostics } = await parser.parse(text);
const show = (d) => `${d.path.join("/")}: ${d.message} (${d.code})`;
const errors = diagnostics.filter((d) => d.severity === DiagnosticSeverity.Error).map(show);
const warnings = diagnostics.filter((d) => d.severity === DiagnosticSeverity.Warning).map(show);
const channels = {};
if (document) {
  for (const channel of document.channels()) {
    channels[channel.address()] = channel.operations().all().map((op) => ({
      action: op.action(),
      service: op.extensions().get("x-mas-service")?.value() ?? null,
      queue: op.extensions().get("x-mas-queue")?.value() ?? null,
      messages: op.messages().all().map((m) => m.name()),
      payloadType: op.messages().all().map((m) => m.payload()?.type() ?? null),
    }));
  }
}
console.log(JSON.stringify({ errors, warnings, channels, operations: document ? document.operations().length : 0 }));
process.exit(document && errors.length === 0 ? 0 : 1);
