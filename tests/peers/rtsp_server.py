#!/usr/bin/python3
"""A real RTSP server for the camera tests: GStreamer's gst-rtsp-server (through Debian's python3-gi) on 127.0.0.1,
streaming a clip in a loop as a live camera does. ffmpeg sends the clip's packets as RTP to a local UDP port at
their own pace (timestamps stay right across loops); the server's pipeline repayloads them to every reader.

  rtsp_server.py --port P --clip F [--codec h264|h265] [--user U --password PW] [--no-keyframes]

--no-keyframes strips the keyframes (IDR slices) from the stream: a camera whose pictures can never be decoded.
Prints "ready" on stdout once it listens; stops (and takes ffmpeg with it) when killed or when stdin closes.
Run it with Debian's /usr/bin/python3: it has python3-gi.
"""
import argparse
import ctypes
import signal
import socket
import subprocess
import sys
import threading

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402


def free_udp_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def die_with_parent():
    # PR_SET_PDEATHSIG = 1: ffmpeg goes when this process goes, even on SIGKILL.
    ctypes.CDLL("libc.so.6").prctl(1, signal.SIGKILL)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--clip", required=True)
    p.add_argument("--codec", choices=["h264", "h265"], default="h264")
    p.add_argument("--user")
    p.add_argument("--password")
    p.add_argument("--no-keyframes", action="store_true")
    a = p.parse_args()

    Gst.init(None)
    udp = free_udp_port()
    enc = "H264" if a.codec == "h264" else "H265"
    depay, parse, pay = (
        ("rtph264depay", "h264parse", "rtph264pay")
        if a.codec == "h264"
        else ("rtph265depay", "h265parse", "rtph265pay")
    )
    launch = (
        f'( udpsrc port={udp} address=127.0.0.1 caps="application/x-rtp,media=video,'
        f'encoding-name={enc},payload=96,clock-rate=90000" ! {depay} ! {parse} ! '
        f"{pay} name=pay0 pt=96 config-interval=1 )"
    )
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(a.port))
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(launch)
    factory.set_shared(True)
    if a.user:
        auth = GstRtspServer.RTSPAuth()
        token = GstRtspServer.RTSPToken()
        token.set_string("media.factory.role", "camera-user")
        auth.add_basic(GstRtspServer.RTSPAuth.make_basic(a.user, a.password or ""), token)
        server.set_auth(auth)
        factory.add_role_from_structure(
            Gst.Structure.new_from_string(
                "camera-user, media.factory.access=(boolean)true, media.factory.construct=(boolean)true"
            )
        )
    server.get_mount_points().add_factory("/cam", factory)
    if server.attach(None) == 0:
        print("cannot listen", flush=True)
        sys.exit(1)

    bsf = []
    if a.no_keyframes:
        idr = "5" if a.codec == "h264" else "16|17|18|19|20"
        bsf = ["-bsf:v", f"filter_units=remove_types={idr}"]
    feeder = subprocess.Popen(
        ["ffmpeg", "-v", "error", "-re", "-stream_loop", "-1", "-i", a.clip, "-an", "-c:v", "copy", *bsf,
         "-f", "rtp", "-payload_type", "96", f"rtp://127.0.0.1:{udp}"],
        stdout=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
        preexec_fn=die_with_parent,
    )
    loop = GLib.MainLoop()

    def stdin_closed():
        sys.stdin.read()
        loop.quit()

    threading.Thread(target=stdin_closed, daemon=True).start()
    print("ready", flush=True)
    try:
        loop.run()
    finally:
        feeder.kill()


if __name__ == "__main__":
    main()
