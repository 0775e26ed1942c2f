#!/usr/bin/env python3
"""Bytes of the answers a model reads, as a client sees them, through the
official MCP Python SDK, on a store of 1,200 work items (10 projects,
40 sessions, 1,150 tasks: 55% active, 35% completed, 10% blocked; a
completed session with open tasks, a deleted one), 45 vendors, 50
deployments, 12 enhancements and 100 dependencies.

    pip install mcp
    python3 benches/answer_size.py target/debug/waymark [--keep DIR] [--binary OTHER ...]

Builds the store once through the first binary (`serve --toolset all`),
then measures each answer with every binary named, on that same store.
`both copies`: `CallToolResult.model_dump_json(by_alias=True,
exclude_none=True)` (the text copy MCP requires and `structuredContent`);
`structured`: the compact JSON of `structuredContent` alone. `--keep DIR`
keeps the store in DIR (for `waymark --data-dir DIR status`).
"""
import asyncio
import json
import sys
import tempfile

from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client

ANSWERS = [
    ("get_project_status", {}),
    ("get_project_status", {"format": "json"}),
    ("get_project_status", {"format": "markdown"}),
    ("list_work_items", {}),
    ("list_ready_work", {}),
]


async def session_for(binary, data):
    params = StdioServerParameters(command=binary, args=["--data-dir", data, "serve", "--toolset", "all"])
    return stdio_client(params)


async def call(s, tool, args):
    r = await s.call_tool(tool, args)
    if r.is_error:
        raise SystemExit(f"{tool} {args}: {r.content[0].text}")
    return r


async def build(s):
    async def item(kind, title, parent=None, status=None):
        args = {"item_type": kind, "title": title}
        if kind == "project":
            args["metadata"] = {"description": f"The {title} project"}
        if parent:
            args["parent_id"] = parent
        if status:
            args["status"] = status
        return (await call(s, "create_work_item", args)).structured_content

    vendors = []
    for v in range(45):
        name = f"vendor {v:02}"
        await call(s, "create_vendor", {
            "name": name,
            "metadata": {"format_support": {"pdf": True, "csv": v % 2 == 0},
                         "test_results": {"passing": 90 + v % 10, "total": 100}},
        })
        if v % 3:
            await call(s, "update_vendor_status", {"name": name, "version": 1, "status": "operational"})
        vendors.append(name)
    tasks = []
    n = 0
    for p in range(10):
        project = await item("project", f"Project {p}")
        for q in range(4):
            status = "completed" if (p, q) == (0, 0) else None
            session = await item("session", f"Session {p}.{q}", project["id"], status)
            for t in range(29 if p * 4 + q < 30 else 28):
                k = n % 20
                status = "completed" if k < 7 else "blocked" if k < 9 else None
                task = await item("task", f"Task {n}: make the {p}.{q} part work", session["id"], status)
                tasks.append(task)
                n += 1
            if (p, q) == (9, 3):
                await call(s, "update_work_item", {"id": session["id"], "version": session["version"], "deleted": True})
    for d in range(100):
        a, b = tasks[d * 11], tasks[d * 11 + 3]
        await call(s, "manage_dependency", {
            "action": "add", "source_id": a["id"], "target_id": b["id"], "dependency_type": "depends_on"})
    for d in range(50):
        await call(s, "record_deployment", {
            "commit_hash": f"{d:040x}",
            "deployed_at": f"2026-01-{1 + d % 28:02}T{d % 24:02}:00:00Z",
            "pr_number": 100 + d, "pr_title": f"Deploy {d}",
            "test_summary": {"unit": 150 + d, "integration": 30},
            "constitutional_compliance": d % 5 != 0,
            "vendor_ids": vendors[d % 45:d % 45 + 2],
            "work_item_ids": [tasks[d]["id"]],
        })
    for e in range(12):
        await call(s, "manage_enhancement", {
            "action": "create", "title": f"Enhancement {e}", "priority": 1 + e % 5,
            "target_quarter": "2026-Q3", "description": "A longer plan. " * 10})
    return n


async def measure(binary, data):
    async with await session_for(binary, data) as (read, write):
        async with ClientSession(read, write) as s:
            await s.initialize()
            rows = []
            for tool, args in ANSWERS:
                r = await call(s, tool, args)
                both = len(r.model_dump_json(by_alias=True, exclude_none=True).encode())
                structured = len(json.dumps(r.structured_content, separators=(",", ":"), ensure_ascii=False).encode())
                rows.append((tool, json.dumps(args), both, structured))
            return rows


async def main(argv):
    binaries = [argv[0]]
    keep = None
    rest = argv[1:]
    while rest:
        flag, value, rest = rest[0], rest[1], rest[2:]
        if flag == "--keep":
            keep = value
        elif flag == "--binary":
            binaries.append(value)
        else:
            raise SystemExit(__doc__)
    with tempfile.TemporaryDirectory() as tmp:
        data = keep or tmp
        async with await session_for(binaries[0], data) as (read, write):
            async with ClientSession(read, write) as s:
                await s.initialize()
                await build(s)
        for binary in binaries:
            print(f"{binary}:")
            for tool, args, both, structured in await measure(binary, data):
                print(f"  {tool} {args}: {both} bytes both copies, {structured} structured")


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    asyncio.run(main(sys.argv[1:]))
