// Lists tokenwarden's tools through the TypeScript MCP SDK (which compiles every output schema
// with Ajv and warns about what it cannot handle), then compiles every input and output schema
// with Ajv 2020 in strict mode. Usage: node check_schemas.mjs BINARY CONFIG. Prints one JSON line.
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import Ajv2020 from "ajv/dist/2020.js";
import addFormats from "ajv-formats";

const [binary, config] = process.argv.slice(2);
const warnings = [];
for (const level of ["warn", "error", "log"]) {
  console[level] = (...args) => warnings.push(args.map(String).join(" "));
}

const client = new Client({ name: "schema-check", version: "1" });
await client.connect(new StdioClientTransport({ command: binary, args: ["--config", config, "mcp"], stderr: "ignore" }));
const { tools } = await client.listTools();
await client.close();

const errors = [];
const strict = new Ajv2020({ strict: true, allErrors: true });
addFormats(strict);
for (const tool of tools) {
  for (const [which, schema] of [["input", tool.inputSchema], ["output", tool.outputSchema]]) {
    if (!schema) continue;
    try {
      strict.compile(schema);
    } catch (e) {
      errors.push(`${tool.name} ${which}: ${e.message}`);
    }
  }
}
process.stdout.write(JSON.stringify({
  tools: tools.map((t) => t.name).sort(),
  untitled: tools.filter((t) => !t.title).map((t) => t.name),
  without_output_schema: tools.filter((t) => !t.outputSchema).map((t) => t.name),
  sdk_warnings: warnings,
  ajv_strict_errors: errors,
}) + "\n");
