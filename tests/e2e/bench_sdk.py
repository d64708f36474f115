"""Benchmark driver: tokenwarden and InfluxData's official MCP server side by side, both over
stdio, through the official Python MCP client (mcp 2.3.0). Run by `cargo bench --bench
tokenwarden -- sdk`.

Usage: bench_sdk.py SPEC.json, where SPEC is
  {"tokenwarden": {"command": ..., "args": [...]},
   "official": {"command": ..., "args": [...], "env": {...}, "token_file": ...},
   "warmup": 50, "rounds": 500, "profile_calls": 200, "lockstep": true}
Each round calls tokenwarden's list_tokens, then the official list_admin_tokens, then the
official get_help (no output schema, no I/O: the floor), timing each around call_tool. With
"lockstep", each round waits for a line on stdin and ends by printing "." (the bench times its
bare JSON-RPC calls in between, so both see the host alike). Prints one JSON line: latencies in
microseconds (also of the SDK's output-schema check within each list_tokens call), negotiated
protocols, how many tokens each listed, and where the client spends its time on list_tokens.
Never prints a secret: it reads the operator token file only to hand it to the official server,
and calls no tool that creates one.
"""

import asyncio
import cProfile
import importlib.metadata
import json
import os
import pstats
import statistics
import sys
import time

import mcp.client.stdio as mcp_stdio
import mcp_types as types
from mcp import Client
from mcp.client.stdio import StdioServerParameters
from mcp_types import methods as _methods

LIST_ARGS = {"kind": "admin", "limit": 50}

# The last stdout line that carried a list_tokens result, to time its parts on their own.
captured = {}
_parse_line = mcp_stdio._parse_line


def _capturing_parse_line(line):
    if '"structuredContent"' in line and '"tokens"' in line:
        captured["line"] = line
    return _parse_line(line)


mcp_stdio._parse_line = _capturing_parse_line


def params(spec):
    s = spec["tokenwarden"]
    tw = StdioServerParameters(command=s["command"], args=s["args"])
    o = spec["official"]
    with open(o["token_file"]) as f:
        env = dict(os.environ, **o["env"], INFLUX_DB_TOKEN=f.read().strip())
    return tw, StdioServerParameters(command=o["command"], args=o["args"], env=env)


def official_names(result):
    """The names in the official server's answer: a sentence, a newline, then a JSON array."""
    text = result.content[0].text
    return [t["name"] for t in json.loads(text[text.index("\n") + 1 :])]


async def timed(call):
    t = time.perf_counter_ns()
    await call
    return (time.perf_counter_ns() - t) / 1000


def median_us(fn, n=200):
    times = []
    for _ in range(n):
        t = time.perf_counter_ns()
        fn()
        times.append((time.perf_counter_ns() - t) / 1000)
    return statistics.median(times)


async def parts(tw):
    """Each step the client takes on one list_tokens answer, timed alone (median of 200)."""
    line = captured["line"]
    msg = json.loads(line)
    raw = msg["result"]
    version = tw.session.protocol_version
    without_text = dict(msg, result=dict(raw, content=[{"type": "text", "text": ""}]))
    line_without_text = json.dumps(without_text, separators=(",", ":"))
    result = tw.session._call_tool_adapter.validate_python(raw, by_name=False)
    validate = tw.session.validate_tool_result
    loop_times = []
    for _ in range(200):
        t = time.perf_counter_ns()
        await validate("list_tokens", result)
        loop_times.append((time.perf_counter_ns() - t) / 1000)
    return {
        "line_bytes": len(line.encode()),
        "text_copy_bytes": len(raw["content"][0]["text"].encode()),
        "json_loads": median_us(lambda: json.loads(line)),
        "parse_line": median_us(lambda: types.jsonrpc_message_adapter.validate_json(line, by_name=False)),
        "parse_line_without_text": median_us(
            lambda: types.jsonrpc_message_adapter.validate_json(line_without_text, by_name=False)
        ),
        "result_models": median_us(
            lambda: (
                _methods.validate_server_result("tools/call", version, raw),
                tw.session._call_tool_adapter.validate_python(raw, by_name=False),
            )
        ),
        "output_schema": statistics.median(loop_times),
    }


def profile_groups(prof, calls):
    """cProfile's view of `calls` list_tokens calls: named groups and the top functions."""
    st = pstats.Stats(prof)
    total = sum(v[2] for v in st.stats.values())
    groups = {
        "output_schema (jsonschema, validate_tool_result)": ("session.py", "validate_tool_result"),
        "parse_line (pydantic, the whole line incl. the text copy)": ("stdio.py", "_parse_line"),
        "result models (pydantic, validate_server_result)": ("methods.py", "validate_server_result"),
        "waiting for the server (epoll)": ("~", "<method 'poll' of 'select.epoll' objects>"),
    }
    out = {}
    for label, (file, func) in groups.items():
        out[label] = sum(v[3] for (f, _, fn), v in st.stats.items() if fn == func and f.endswith(file))
    out["rest (asyncio, anyio streams, request building)"] = total - sum(out.values())
    top = sorted(st.stats.items(), key=lambda kv: kv[1][2], reverse=True)[:10]
    return {
        "calls": calls,
        "per_call_us": total / calls * 1e6,
        "groups_us": {k: v / calls * 1e6 for k, v in out.items()},
        "top_tottime_us": [
            [f"{os.path.basename(f)}:{fn}", v[2] / calls * 1e6] for (f, _, fn), v in top
        ],
    }


async def main():
    with open(sys.argv[1]) as f:
        spec = json.load(f)
    tw_params, official_params = params(spec)
    series = {"tokenwarden_list": [], "official_list": [], "official_help": []}
    async with Client(tw_params) as tw, Client(official_params) as official:
        # A client lists tools before calling them; that is also when it learns output schemas.
        await tw.list_tools()
        await official.list_tools()
        listed = (await tw.call_tool("list_tokens", LIST_ARGS)).structured_content["tokens"]
        names = official_names(await official.call_tool("list_admin_tokens", {}))
        summary = {
            "sdk": f"python mcp {importlib.metadata.version('mcp')}",
            "protocols": {"tokenwarden": str(tw.protocol_version), "official": str(official.protocol_version)},
            "listed": {
                "tokenwarden": len(listed),
                "official": len(names),
                "same_names": sorted(t["name"] for t in listed) == sorted(names),
            },
        }
        # Time the SDK's own output-schema check inside the measured calls too.
        checks = []
        check = tw.session.validate_tool_result

        async def timed_check(name, result):
            checks.append(await timed(check(name, result)))

        tw.session.validate_tool_result = timed_check
        for i in range(spec["warmup"] + spec["rounds"]):
            if spec.get("lockstep"):
                sys.stdin.readline()
            times = [
                await timed(tw.call_tool("list_tokens", LIST_ARGS)),
                await timed(official.call_tool("list_admin_tokens", {})),
                await timed(official.call_tool("get_help", {})),
            ]
            if i >= spec["warmup"]:
                for s, t in zip(series.values(), times):
                    s.append(t)
            if spec.get("lockstep"):
                print(".", flush=True)
        del tw.session.validate_tool_result
        series["tokenwarden_output_schema"] = checks[spec["warmup"] :]
        summary["us"] = series
        summary["parts_us"] = await parts(tw)
        prof = cProfile.Profile()
        prof.enable()
        for _ in range(spec["profile_calls"]):
            await tw.call_tool("list_tokens", LIST_ARGS)
        prof.disable()
        summary["profile"] = profile_groups(prof, spec["profile_calls"])
    print(json.dumps(summary))


asyncio.run(main())
