"""
A fake EC2 for the ``ec2`` provider's tests: moto's server, the standard AWS fake, as a real
HTTP endpoint on loopback, with boto3 pointed at it through ``EC2_ENDPOINT_URL``.

moto simulates the EC2 API but not two things a real cloud has, so a small HTTP front sits
between boto3 and moto's server and adds them, answering in EC2's own wire format (boto3 is
not patched; it parses these responses exactly as it parses AWS's):

- **capacity**: ``RunInstances`` into a zone or subnet listed in ``front.full`` answers what
  AWS answers when a zone is out of a GPU type (HTTP 500, ``InsufficientInstanceCapacity``),
  or a quota error (``VcpuLimitExceeded``, HTTP 400) for entries in ``front.over_quota``;
- **the instance's serial console**: moto's ``GetConsoleOutput`` is a fixed sample text; the
  front replaces its ``<output>`` with ``front.console`` (what cloud-init on the instance would
  print, e.g. its SSH host keys), after moto has answered for the instance id.

Every other request, and the rest of those two, is moto's own answer.
"""
from __future__ import annotations

import base64
import http.client
import re
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

ICE_MESSAGE = ("We currently do not have sufficient {type} capacity in the Availability Zone you requested ({zone}). "
               "Our system will be working on provisioning additional capacity.")
QUOTA_MESSAGE = ("You have requested more vCPU capacity than your current vCPU limit of 0 allows for the instance bucket "
                 "that the specified instance type belongs to.")


def cloud_init_console(host_keys: list[str], *, hostname: str = "ip-10-0-0-12") -> str:
    """What an instance's serial console shows on first boot: cloud-init's keys_to_console
    module prints the host keys between markers, each line through syslog (``ec2:`` tag)."""
    stamp = "<14>Nov 23 12:00:01 ec2:"
    lines = ["-----BEGIN SSH HOST KEY FINGERPRINTS-----", "256 SHA256:3oX0e9Hq root@host (ED25519)",
             "-----END SSH HOST KEY FINGERPRINTS-----", "-----BEGIN SSH HOST KEY KEYS-----",
             *[f"{k} root@{hostname}" for k in host_keys], "-----END SSH HOST KEY KEYS-----"]
    return (
        "[    0.000000] Linux version 6.8.0-1021-aws (buildd@lcy02-amd64-093)\n"
        "[   21.482121] cloud-init[1043]: Cloud-init v. 24.4 running 'modules:final'\n"
        + "".join(f"{stamp} {line}\n" for line in lines)
        + "[   24.101310] cloud-init[1043]: Cloud-init v. 24.4 finished\n"
    )


def _error(code: str, message: str) -> bytes:
    return (f'<?xml version="1.0" encoding="UTF-8"?>\n<Response><Errors><Error><Code>{code}</Code>'
            f"<Message>{message}</Message></Error></Errors><RequestID>{uuid.uuid4()}</RequestID></Response>").encode()


class Ec2Front:
    """The HTTP front described in the module docstring. ``url`` is what boto3 talks to."""

    def __init__(self, moto_port: int):
        self.moto_port = moto_port
        self.full: set[str] = set()        # zones or subnet ids with no capacity
        self.over_quota: set[str] = set()  # zones or subnet ids answering a vCPU quota error
        self.console: str | None = None    # serial console text of every instance
        self.run_instances_calls: list[dict] = []
        front = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output quiet
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                params = {k: v[0] for k, v in parse_qs(body.decode()).items()}
                action = params.get("Action")
                if action == "RunInstances":
                    front.run_instances_calls.append(params)
                    where = {params.get("Placement.AvailabilityZone"), params.get("SubnetId")} - {None}
                    if where & front.full:
                        zone = params.get("Placement.AvailabilityZone") or params.get("SubnetId")
                        msg = ICE_MESSAGE.format(type=params.get("InstanceType"), zone=zone)
                        return self._send(500, _error("InsufficientInstanceCapacity", msg))
                    if where & front.over_quota:
                        return self._send(400, _error("VcpuLimitExceeded", QUOTA_MESSAGE))
                status, headers, data = self._forward(body)
                if action == "GetConsoleOutput" and status == 200 and front.console is not None:
                    encoded = base64.b64encode(front.console.encode()).decode()
                    data = re.sub(rb"<output>.*?</output>", f"<output>{encoded}</output>".encode(), data, flags=re.S)
                return self._send(status, data, headers.get("Content-Type", "text/xml"))

            do_GET = do_POST

            def _forward(self, body: bytes):
                conn = http.client.HTTPConnection("127.0.0.1", front.moto_port, timeout=30)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")}
                conn.request(self.command, self.path, body=body, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
                conn.close()
                return resp.status, dict(resp.getheaders()), data

            def _send(self, status: int, data: bytes, content_type: str = "text/xml"):
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def reset(self) -> None:
        self.full.clear()
        self.over_quota.clear()
        self.console = None
        self.run_instances_calls.clear()
