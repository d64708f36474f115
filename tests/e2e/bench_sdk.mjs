// Benchmark driver: tokenwarden and InfluxData's official MCP server side by side, both over
// stdio, through the TypeScript MCP SDK (@modelcontextprotocol/sdk 1.32.2). Run by
// `cargo bench --bench tokenwarden -- sdk`; the counterpart of bench_sdk.py (same SPEC.json).
//
// Usage: node bench_sdk.mjs SPEC.json (with "lockstep", each round waits for a line on stdin and
// ends by printing ".", so the bench can time its bare JSON-RPC calls in between).
// Each round calls tokenwarden's list_tokens, then the official list_admin_tokens, then the
// official get_help (no output schema, no I/O: the floor), timing each around client.callTool.
// Prints one JSON line. Never prints a secret: the operator token file is only handed to the
// official server, and no tool that creates a token is called.

import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { deserializeMessage } from '@modelcontextprotocol/sdk/shared/stdio.js';
import { CallToolResultSchema } from '@modelcontextprotocol/sdk/types.js';

const LIST_ARGS = { kind: 'admin', limit: 50 };
const spec = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const sdkPackage = new URL('node_modules/@modelcontextprotocol/sdk/package.json', import.meta.url);
const sdkVersion = JSON.parse(readFileSync(sdkPackage, 'utf8')).version;

const nowUs = () => Number(process.hrtime.bigint()) / 1000;

async function connect(server, env) {
  const transport = new StdioClientTransport({ command: server.command, args: server.args, env });
  // The stdio transport has no use for the negotiated version; keep it for the report.
  transport.setProtocolVersion = (version) => {
    transport.protocolVersion = version;
  };
  const client = new Client({ name: 'tokenwarden-bench', version: '0' });
  await client.connect(transport);
  return { client, transport };
}

async function timed(call) {
  const t = nowUs();
  await call();
  return nowUs() - t;
}

function medianUs(fn, n = 200) {
  const times = [];
  for (let i = 0; i < n; i++) {
    const t = nowUs();
    fn();
    times.push(nowUs() - t);
  }
  times.sort((a, b) => a - b);
  return times[n >> 1];
}

// Each step the client takes on one list_tokens answer, timed alone (median of 200).
function parts(validator, message) {
  const line = JSON.stringify(message);
  const withoutText = JSON.stringify({
    ...message,
    result: { ...message.result, content: [{ type: 'text', text: '' }] },
  });
  const structured = message.result.structuredContent;
  if (!validator(structured).valid) throw new Error('list_tokens does not match its schema');
  return {
    line_bytes: Buffer.byteLength(line),
    text_copy_bytes: Buffer.byteLength(message.result.content[0].text),
    json_parse: medianUs(() => JSON.parse(line)),
    deserialize: medianUs(() => deserializeMessage(line)),
    deserialize_without_text: medianUs(() => deserializeMessage(withoutText)),
    result_schema: medianUs(() => CallToolResultSchema.parse(message.result)),
    output_schema: medianUs(() => validator(structured)),
  };
}

const official = spec.official;
const env = { ...official.env, INFLUX_DB_TOKEN: readFileSync(official.token_file, 'utf8').trim() };
const tw = await connect(spec.tokenwarden, {});
const off = await connect(official, env);
// A client lists tools before calling them; that is when it compiles output-schema validators.
await tw.client.listTools();
await off.client.listTools();

// Keep the last list_tokens message as the transport parsed it, to time its parts alone.
let captured;
const onmessage = tw.transport.onmessage;
tw.transport.onmessage = (message, extra) => {
  if (message.result?.structuredContent?.tokens) captured = message;
  onmessage(message, extra);
};

const listed = (await tw.client.callTool({ name: 'list_tokens', arguments: LIST_ARGS }))
  .structuredContent.tokens.map((t) => t.name);
const text = (await off.client.callTool({ name: 'list_admin_tokens', arguments: {} })).content[0].text;
const names = JSON.parse(text.slice(text.indexOf('\n') + 1)).map((t) => t.name);
const sorted = (a) => [...a].sort().join('\n');

// Time the SDK's own output-schema check (the Ajv validator it compiled) inside the measured calls.
const validator = tw.client.getToolOutputValidator('list_tokens');
const checks = [];
tw.client._cachedToolOutputValidators.set('list_tokens', (value) => {
  const t = nowUs();
  const result = validator(value);
  checks.push(nowUs() - t);
  return result;
});

const series = { tokenwarden_list: [], official_list: [], official_help: [] };
const go = createInterface({ input: process.stdin })[Symbol.asyncIterator]();
for (let i = 0; i < spec.warmup + spec.rounds; i++) {
  if (spec.lockstep) await go.next();
  const times = [
    await timed(() => tw.client.callTool({ name: 'list_tokens', arguments: LIST_ARGS })),
    await timed(() => off.client.callTool({ name: 'list_admin_tokens', arguments: {} })),
    await timed(() => off.client.callTool({ name: 'get_help', arguments: {} })),
  ];
  if (i >= spec.warmup) Object.values(series).forEach((s, k) => s.push(times[k]));
  if (spec.lockstep) console.log('.');
}

const summary = {
  sdk: `typescript @modelcontextprotocol/sdk ${sdkVersion} (node ${process.versions.node})`,
  protocols: {
    tokenwarden: tw.transport.protocolVersion,
    official: off.transport.protocolVersion,
  },
  listed: { tokenwarden: listed.length, official: names.length, same_names: sorted(listed) === sorted(names) },
  us: { ...series, tokenwarden_output_schema: checks.slice(spec.warmup) },
  parts_us: parts(validator, captured),
};
await tw.client.close();
await off.client.close();
console.log(JSON.stringify(summary));
process.exit(0); // stdin may still be open

