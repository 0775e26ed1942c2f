#!/usr/bin/env python3
"""Bytes of `tools/list` as a client sees them, through the official MCP
Python SDK: `ListToolsResult.model_dump_json(by_alias=True, exclude_none=True)`.

    pip install mcp
    python3 benches/tools_list_size.py target/release/waymark [--toolset core|all] [--read-only]

Prints the total and each tool's bytes, largest first. Starts `waymark serve`
on a throwaway store, so it never touches yours.
"""
import asyncio
import sys
import tempfile

from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client


async def main(binary, extra):
    with tempfile.TemporaryDirectory() as data:
        params = StdioServerParameters(command=binary, args=["--data-dir", data, "serve", *extra])
        async with stdio_client(params) as (read, write):
            async with ClientSession(read, write) as session:
                await session.initialize()
                result = await session.list_tools()
                total = len(result.model_dump_json(by_alias=True, exclude_none=True).encode())
                sizes = sorted(
                    ((len(t.model_dump_json(by_alias=True, exclude_none=True).encode()), t.name) for t in result.tools),
                    reverse=True,
                )
                print(f"tools/list {' '.join(extra) or '(default)'}: {total} bytes, {len(result.tools)} tools")
                for size, name in sizes:
                    print(f"  {size:6} {name}")


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    asyncio.run(main(sys.argv[1], sys.argv[2:]))
