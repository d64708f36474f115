// InfluxData's official MCP server (@influxdata/influxdb3-mcp-server 1.4.1), driven by the
// TypeScript MCP SDK client (1.32.2) through every token and database tool and query_sql.
//
// Usage: node official_mcp.mjs EDITION SIM_URL WORKDIR
// EDITION is core or enterprise; WORKDIR holds operator.token (the server's INFLUX_DB_TOKEN) and
// is the server's working directory. The regenerated operator token is written to
// WORKDIR/operator.new.token (0600) for the test to check on its own. Prints one JSON summary
// line; a secret never appears in it: only whether one came back, and the status codes it got.

import { writeFileSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";

const [edition, simUrl, workdir] = process.argv.slice(2);
const SERVER = new URL(
  "./node_modules/@influxdata/influxdb3-mcp-server/build/index.js",
  import.meta.url,
).pathname;
const SECRET = /apiv3_[A-Za-z0-9_-]+/g;
const redact = (text) => text.replace(SECRET, "apiv3_<redacted>");
const operator = readFileSync(join(workdir, "operator.token"), "utf8").trim();

const transport = new StdioClientTransport({
  command: process.execPath,
  args: [SERVER],
  cwd: workdir,
  env: {
    INFLUX_DB_PRODUCT_TYPE: edition,
    INFLUX_DB_INSTANCE_URL: simUrl,
    INFLUX_DB_TOKEN: operator,
    MCP_LOG_TOOL_CALLS: "false",
  },
  stderr: "pipe",
});
let serverLog = "";
transport.stderr.on("data", (chunk) => {
  serverLog += chunk;
});
const client = new Client({ name: "tokenwarden-official-mcp-e2e", version: "1.0.0" });
await client.connect(transport);

/** An HTTP status from the simulator for `secret`, never the secret itself. */
async function status(method, path, secret, body) {
  const headers = { Authorization: `Bearer ${secret}` };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const r = await fetch(simUrl + path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  await r.arrayBuffer();
  return r.status;
}
const ping = (secret) => status("GET", "/ping", secret);
const readMetrics = (secret) =>
  status("POST", "/api/v3/query_sql", secret, {
    db: "metrics",
    q: "SELECT id FROM system.queries LIMIT 1",
    format: "json",
  });

const summary = { edition, calls: {} };
const secrets = {};

/** Calls `tool`; keeps its text redacted under `label` and any secret it returned aside. */
async function call(label, tool, args = {}) {
  const r = await client.callTool({ name: tool, arguments: args });
  const text = r.content.map((c) => c.text ?? "").join("\n");
  const found = text.match(SECRET);
  if (found) secrets[label] = found[0];
  summary.calls[label] = {
    tool,
    error: r.isError === true,
    secret: found !== null,
    text: redact(text),
  };
  return text;
}

/** The JSON a tool printed after its first line (list_admin_tokens, list_resource_tokens). */
const afterFirstLine = (text) => JSON.parse(text.slice(text.indexOf("\n") + 1));
const tokensOf = (text) =>
  afterFirstLine(text).map((t) => ({ name: t.name, permissions: t.permissions }));
const databasesOf = (text) => JSON.parse(text).databases.map((d) => d.name);

/** The sequence a user might ask for, one tool after another. */
async function drive() {
  const info = client.getServerVersion();
  summary.server = `${info.name} ${info.version}`;
  summary.tools = (await client.listTools()).tools.map((t) => t.name).sort();

  // Databases: create two, set a retention period on one, delete the other.
  await call("create_database", "create_database", { name: "metrics" });
  await call("create_scratch", "create_database", { name: "scratch" });
  summary.databases = databasesOf(await call("list_databases", "list_databases"));
  await call("update_database", "update_database", {
    name: "metrics",
    retentionPeriod: 7 * 86_400 * 1e9,
  });
  await call("delete_database", "delete_database", { name: "scratch" });
  summary.databases_after = databasesOf(await call("list_databases_after", "list_databases"));

  // Admin tokens: create one, list all, list by name.
  await call("create_admin_token", "create_admin_token", { name: "mcp-admin" });
  if (secrets.create_admin_token) summary.admin_ping = await ping(secrets.create_admin_token);
  summary.admin_tokens = tokensOf(await call("list_admin_tokens", "list_admin_tokens"));
  summary.admin_filtered = tokensOf(
    await call("list_admin_filtered", "list_admin_tokens", { tokenName: "mcp" }),
  );

  // Resource tokens (Enterprise only): an expiring reader and a writer, listed by database
  // and name.
  await call("create_reader", "create_resource_token", {
    description: "mcp-reader",
    databases: ["metrics"],
    actions: ["read"],
    expiry_secs: 3600,
  });
  await call("create_writer", "create_resource_token", {
    description: "mcp-writer",
    databases: ["metrics"],
    actions: ["read", "write"],
  });
  if (secrets.create_reader) {
    summary.reader_query = await readMetrics(secrets.create_reader);
    summary.reader_ping = await ping(secrets.create_reader);
  }
  const listed = await call("list_resource_tokens", "list_resource_tokens", {
    databaseName: "metrics",
    tokenName: "mcp",
    orderBy: "name",
    orderDirection: "DESC",
  });
  if (!summary.calls.list_resource_tokens.error) summary.resource_tokens = tokensOf(listed);

  // query_sql, which follows each query with one on system.queries.
  const queried = await call("query_sql", "query_sql", {
    db: "_internal",
    q: "SELECT name FROM system.tokens ORDER BY token_id",
  });
  if (!summary.calls.query_sql.error) {
    const q = JSON.parse(queried);
    summary.query_rows = q.rows.map((r) => r.name);
    summary.query_id_source = q.metadata.query_id_source;
    summary.query_phase = q.metadata.phase ?? null;
    summary.query_metadata = Object.keys(q.metadata);
  }

  // Deletes: the named admin token goes; the operator token cannot.
  await call("delete_token", "delete_token", { token_name: "mcp-admin" });
  const admin = secrets.create_admin_token;
  if (admin) summary.deleted_admin_ping = await ping(admin);
  await call("delete_operator", "delete_token", { token_name: "_admin" });

  // Regeneration last: it kills the token the official server itself was started with.
  await call("regenerate_operator_token", "regenerate_operator_token");
  const fresh = secrets.regenerate_operator_token;
  if (fresh) {
    writeFileSync(join(workdir, "operator.new.token"), fresh, { mode: 0o600 });
    summary.new_operator_ping = await ping(fresh);
  }
  summary.old_operator_ping = await ping(operator);
  await call("after_regenerate", "list_admin_tokens");
}

try {
  await drive();
} catch (e) {
  process.stderr.write(`${redact(String(e?.stack ?? e))}\nso far: ${JSON.stringify(summary)}\n`);
  process.exitCode = 1;
} finally {
  await client.close();
  process.stderr.write(redact(serverLog));
}
if (!process.exitCode) console.log(JSON.stringify(summary));
