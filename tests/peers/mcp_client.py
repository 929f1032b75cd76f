"""MCP client scenarios run by tests/it/mcp.rs with the official MCP Python SDK (mcp 2.x).

Usage: mcp_client.py http URL TOKEN OPERATOR_TOKEN REST_BASE
       mcp_client.py http-operator-only URL TOKEN
       mcp_client.py stdio JARVIS_BIN CONFIG OPERATOR_TOKEN REST_BASE
       mcp_client.py faces URL TOKEN
Prints one JSON object with what each step saw; the Rust test asserts on it.
"""
import base64
import json
import sys
import urllib.error
import urllib.request

import anyio
import mcp.types as types
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client


def text_of(result) -> str:
    return "\n".join(c.text for c in result.content if getattr(c, "text", None) is not None)


def approve_over_rest(rest_base: str, operator_token: str, approval_id: str) -> int:
    req = urllib.request.Request(
        f"{rest_base}/api/v1/approvals/{approval_id}",
        data=json.dumps({"approve": True}).encode(),
        headers={"Authorization": f"Bearer {operator_token}", "Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        return resp.status


def approval_id_from(text: str) -> str:
    start = text.index("{", text.index("NOT DONE YET"))
    return json.loads(text[start:])["approval"]["id"]


async def common(client, out: dict, rest_base: str, operator_token: str, vmid: int) -> None:
    out["protocol"] = str(client.protocol_version)
    tools = (await client.list_tools()).tools
    out["tool_names"] = sorted(t.name for t in tools)
    out["stop_description"] = next(t.description for t in tools if t.name == "stop_guest")
    status = await client.call_tool("cluster_status", {})
    out["cluster_status_error"] = status.is_error
    out["cluster_nodes"] = len(json.loads(text_of(status))["nodes"])
    bad = await client.call_tool("guest_status", {"vmid": "one-oh-one"})
    out["bad_args"] = {"is_error": bad.is_error, "text": text_of(bad)}
    first = await client.call_tool("stop_guest", {"vmid": vmid})
    first_text = text_of(first)
    out["pending"] = {"is_error": first.is_error, "text": first_text}
    approval = approval_id_from(first_text)
    out["rest_approve_status"] = approve_over_rest(rest_base, operator_token, approval)
    second = await client.call_tool("stop_guest", {"vmid": vmid})
    out["after_approval"] = {"is_error": second.is_error, "text": text_of(second)}
    res = await client.read_resource("jarvis://cluster")
    content = res.contents[0]
    out["resource"] = {"mime": content.mime_type, "nodes": len(json.loads(content.text)["nodes"])}


async def elicited(url: str, token: str, mode: str, answer: bool, out: dict, key: str, vmid: int) -> None:
    asked = []

    async def on_elicit(context, params):
        asked.append(params.message)
        return types.ElicitResult(action="accept", content={"approve": answer})

    async with create_mcp_http_client(headers={"Authorization": f"Bearer {token}"}) as http:
        async with Client(streamable_http_client(url, http_client=http), elicitation_callback=on_elicit, mode=mode) as c:
            r = await c.call_tool("reboot_guest", {"vmid": vmid})
            out[key] = {"protocol": str(c.protocol_version), "asked": asked, "is_error": r.is_error, "text": text_of(r)}


async def faces(client, out: dict) -> None:
    """Lists people and works the face review queue: assigns the one unknown group, then tries again."""
    people = json.loads(text_of(await client.call_tool("list_people", {})))["people"]
    out["people"] = [p["name"] for p in people]
    queue = json.loads(text_of(await client.call_tool("face_review_queue", {})))
    out["groups_before"] = len(queue["unknown"])
    group = queue["unknown"][0]["group"]
    assigned = await client.call_tool("assign_faces", {"group": group, "person": "Erik", "create_person": True})
    out["assigned"] = {"is_error": assigned.is_error, "text": text_of(assigned)}
    queue = json.loads(text_of(await client.call_tool("face_review_queue", {})))
    out["groups_after"] = len(queue["unknown"])
    again = await client.call_tool("assign_faces", {"group": group, "person": "Erik"})
    out["assign_again"] = {"is_error": again.is_error, "text": text_of(again)}


async def cameras(client, out: dict) -> None:
    """Who is home, then a camera snapshot: the picture must come as MCP image content."""
    out["home"] = json.loads(text_of(await client.call_tool("who_is_home", {})))
    r = await client.call_tool("camera_snapshot", {"camera": "front_door"})
    images = [c for c in r.content if getattr(c, "type", "") == "image"]
    out["snapshot"] = {
        "is_error": r.is_error,
        "images": [{"mime": i.mime_type, "jpeg": base64.b64decode(i.data)[:3] == b"\xff\xd8\xff"} for i in images],
        "text": text_of(r),
    }
    bad = await client.call_tool("camera_snapshot", {"camera": "attic"})
    out["no_such_camera"] = {"is_error": bad.is_error, "text": text_of(bad)}


def unauthenticated(url: str) -> int:
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}).encode()
    req = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status
    except urllib.error.HTTPError as e:
        return e.code


async def main() -> None:
    kind = sys.argv[1]
    out: dict = {}
    if kind == "http":
        url, token, operator_token, rest_base = sys.argv[2:6]
        async with create_mcp_http_client(headers={"Authorization": f"Bearer {token}"}) as http:
            async with Client(streamable_http_client(url, http_client=http)) as c:
                await common(c, out, rest_base, operator_token, 112)
        await elicited(url, token, "auto", True, out, "elicit_auto", 120)
        await elicited(url, token, "legacy", True, out, "elicit_legacy", 121)
        await elicited(url, token, "auto", False, out, "elicit_declined", 122)
        out["no_token_status"] = unauthenticated(url)
    elif kind == "http-operator-only":
        # Client confirmation off (the default): a client that accepts every elicitation is never asked.
        url, token = sys.argv[2:4]
        await elicited(url, token, "auto", True, out, "elicit_auto", 120)
        await elicited(url, token, "legacy", True, out, "elicit_legacy", 121)
    elif kind == "cameras":
        url, token = sys.argv[2:4]
        async with create_mcp_http_client(headers={"Authorization": f"Bearer {token}"}) as http:
            async with Client(streamable_http_client(url, http_client=http)) as c:
                await cameras(c, out)
    elif kind == "faces":
        url, token = sys.argv[2:4]
        async with create_mcp_http_client(headers={"Authorization": f"Bearer {token}"}) as http:
            async with Client(streamable_http_client(url, http_client=http)) as c:
                await faces(c, out)
    else:
        jarvis, config, operator_token, rest_base = sys.argv[2:6]
        params = StdioServerParameters(command=jarvis, args=["mcp", "--config", config], env={"RUST_LOG": "warn"})
        async with Client(params) as c:
            await common(c, out, rest_base, operator_token, 111)
    print(json.dumps(out))


anyio.run(main)
