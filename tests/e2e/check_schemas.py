"""Lists tokenwarden's tools through the Python MCP SDK and checks every input and output schema
against the JSON Schema 2020-12 meta-schema (`Draft202012Validator.check_schema`), then looks for
what strict validators refuse or pay for: formats JSON Schema does not define, `$ref`s.

Usage: check_schemas.py BINARY CONFIG. Prints one JSON line.
"""

import asyncio
import json
import sys

from jsonschema import Draft202012Validator, SchemaError
from mcp import Client
from mcp.client.stdio import StdioServerParameters

STANDARD = {"date-time", "date", "time", "duration", "email", "idn-email", "hostname", "idn-hostname", "ipv4",
            "ipv6", "uri", "uri-reference", "iri", "iri-reference", "uuid", "uri-template", "json-pointer",
            "relative-json-pointer", "regex"}


def walk(node, found):
    if isinstance(node, dict):
        fmt = node.get("format")
        if isinstance(fmt, str) and fmt not in STANDARD:
            found["formats"].add(fmt)
        if "$ref" in node:
            found["refs"] += 1
        for v in node.values():
            walk(v, found)
    elif isinstance(node, list):
        for v in node:
            walk(v, found)


async def main():
    server = StdioServerParameters(command=sys.argv[1], args=["--config", sys.argv[2], "mcp"])
    async with Client(server) as c:
        tools = (await c.list_tools()).tools
    errors, found = [], {"formats": set(), "refs": 0}
    for t in tools:
        for which, schema in (("input", t.input_schema), ("output", t.output_schema)):
            if schema is None:
                continue
            try:
                Draft202012Validator.check_schema(schema)
            except SchemaError as e:
                errors.append(f"{t.name} {which}: {e.message}")
            walk(schema, found)
    print(json.dumps({
        "tools": sorted(t.name for t in tools),
        "meta_schema_errors": errors,
        "nonstandard_formats": sorted(found["formats"]),
        "refs": found["refs"],
        "schemas": {t.name: {"input": t.input_schema, "output": t.output_schema} for t in tools},
    }))


asyncio.run(main())
