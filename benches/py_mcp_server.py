"""The reference for benches/mcp.rs: a Python MCP server (official SDK's MCPServer, the FastMCP successor) with one
tool of the same shape as Jarvis's cluster_status: no arguments, returns the same JSON text as text content only
(no structuredContent, as Jarvis), logging at WARNING (uvicorn's per-request access log off), as Jarvis runs at warn.
Usage: py_mcp_server.py PORT PAYLOAD_FILE"""
import sys

from mcp.server.mcpserver import MCPServer

PAYLOAD = open(sys.argv[2]).read()
server = MCPServer("py-bench", log_level="WARNING")


@server.tool(structured_output=False)
def cluster_status() -> str:
    """Overview of the cluster (same payload as Jarvis's)."""
    return PAYLOAD


if __name__ == "__main__":
    server.run("streamable-http", host="127.0.0.1", port=int(sys.argv[1]))
