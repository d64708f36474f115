"""Drives tokenwarden's MCP server with the official Python MCP client (mcp 2.3.0).

Usage: mcp_client.py stdio MODE BINARY CONFIG SIM_URL
       mcp_client.py http  MODE URL BEARER SIM_URL
MODE is "legacy" (2025-11-25) or "auto" (2026-07-28 when offered). Prints one JSON summary line;
never prints a secret.
"""

import asyncio
import json
import re
import sys

import httpx2
from mcp import Client
from mcp.client.stdio import StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
import mcp_types as types

seen = {"forms": 0, "urls": []}


async def on_elicit(ctx, params):
    url = getattr(params, "url", None)
    if url:
        seen["urls"].append(url)
        return types.ElicitResult(action="accept")
    seen["forms"] += 1
    match = re.search(r"Type `([^`]+)` to confirm", params.message)
    return types.ElicitResult(action="accept", content={"token_name": match.group(1) if match else ""})


async def reveal(url, sim_url):
    """Opens a reveal link like a person, checks the secret works, and that the link is then gone."""
    async with httpx2.AsyncClient() as http:
        page = await http.get(url)
        assert page.status_code == 200 and "apiv3_" not in page.text, page.status_code
        shown = await http.post(url)
        secret = re.search(r"apiv3_[A-Za-z0-9_-]+", shown.text).group(0)
        ping = await http.get(f"{sim_url}/ping", headers={"Authorization": f"Bearer {secret}"})
        again = await http.post(url)
        return ping.status_code, again.status_code


async def main():
    transport, mode = sys.argv[1], sys.argv[2]
    sim_url = sys.argv[5]
    if transport == "stdio":
        server = StdioServerParameters(command=sys.argv[3], args=["--config", sys.argv[4], "mcp"])
    else:
        http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {sys.argv[4]}"}, timeout=httpx2.Timeout(30, read=60))
        server = streamable_http_client(sys.argv[3], http_client=http)
    summary = {}
    async with Client(server, mode=mode, elicitation_callback=on_elicit) as c:
        summary["protocol"] = str(c.protocol_version)
        tools = (await c.list_tools()).tools
        summary["tools"] = sorted(t.name for t in tools)
        delete = next(t for t in tools if t.name == "delete_token")
        summary["delete_destructive"] = delete.annotations.destructive_hint
        listed = await c.call_tool("list_tokens", {"kind": "admin"})
        summary["listed"] = [t["name"] for t in listed.structured_content["tokens"]]
        name = f"py-{transport}-{mode}"
        created = await c.call_tool("create_admin_token", {"name": name, "expires_in": "1d"})
        summary["create_error"] = created.is_error
        handoff = created.structured_content["secret_handoff"]
        summary["handoff"] = handoff["method"]
        link = handoff.get("reveal_url") or (seen["urls"][-1] if seen["urls"] else None)
        summary["ping_with_secret"], summary["second_reveal"] = await reveal(link, sim_url)
        deleted = await c.call_tool("delete_token", {"name": name})
        result = deleted.structured_content
        if result["status"] == "confirmation_required":
            deleted = await c.call_tool("delete_token", {"name": name, "confirmation_code": result["confirmation_code"]})
            result = deleted.structured_content
        summary["delete_status"] = result["status"]
        summary["forms_answered"] = seen["forms"]
        refused = await c.call_tool("delete_token", {"name": "_admin"})
        summary["admin_refused"] = refused.is_error
    print(json.dumps(summary))


asyncio.run(main())
