"""
Scrubbing speed: one recording rewritten for export (``casts.export_cast``) with an attempt's
``Scrubber.scrub_terminal``, in this process, on one core; no database.

    nice -n 19 .venv/bin/python bench/scrub.py [--cast-mb 2] [--kind synthetic|mixed] [--repeat 3]

``synthetic`` is bench/export.py's eight-hour recording (keystroke echo, training-log lines,
progress bars redrawn with \\r). ``mixed`` interleaves it with terminal output that gives the
scrubber work: coloured ``ls``, pip and git output with URLs and host names, tracebacks under
the home directory, ``env`` dumps with tokens, prompts ``user@host:``, IPv4/IPv6 addresses,
e-mail addresses, quoted strings. Prints the CPU seconds of the export with the scrubber and
with no scrubbing (``scrub=str``), and the scrubber's own throughput: MB of recorded output per
CPU second (best of ``--repeat``), with the machine, the command and the load averages.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import ROOT, command_line, load, machine_facts  # noqa: E402
from export import synthetic_cast  # noqa: E402

USER = "bl5e1f0a9c"
MIXED = [
    "\x1b[0m\x1b[01;34mdata\x1b[0m  \x1b[01;32mtrain.py\x1b[0m  kernel.py  \x1b[01;31mckpt.tar.gz\x1b[0m\r\n",
    "Looking in indexes: https://pypi.org/simple, https://download.pytorch.org/whl/cu121\r\n",
    "Collecting triton==3.1.0 (from torch)\r\n"
    "  Downloading https://files.pythonhosted.org/packages/triton-3.1.0.whl (209.5 MB)\r\n",
    "remote: Enumerating objects: 42, done.\r\nTo github.com:acme/solution.git\r\n   3f2a1b9..8c7d6e5  main -> main\r\n",
    f"Traceback (most recent call last):\r\n  File \"/home/{USER}/solution/train.py\", line 42, in <module>\r\n"
    "    main()\r\nKeyError: 'lr'\r\n",
    f"{USER}@gpu-node-17:~/solution$ ",
    "\x1b]133;A\x07\x1b[32mbench\x1b[0m:\x1b[34m~/solution\x1b[0m$ ",
    "HOME=/home/{u}\r\nWANDB_API_KEY=0123456789abcdef0123456789abcdef01234567\r\n"
    "HF_TOKEN=hf_AbCdEfGhIjKlMnOpQrStUvWxYz123456\r\n"
    "PATH=/usr/local/cuda/bin:/usr/bin\r\n".replace("{u}", USER),
    "inet 10.20.30.40/24 brd 10.20.30.255 scope global eth0\r\n    inet6 fd12:3456:789a::7/64 scope global\r\n",
    "Connecting to gpu-node-17.lab.internal (gpu-node-17.lab.internal)|10.20.30.40|:443... connected.\r\n",
    "git log -1\r\nAuthor: Quentin Farnsworth <quentin.f@privatemail.example.org>\r\n",
    "{'lr': 0.0003, 'batch': 64, 'name': \"baseline-run\", 'token': \"tok_9f8e7d6c5b4a\"}\r\n",
    "| GPU  Name        Persistence-M | Bus-Id        Disp.A |  Memory-Usage |\r\n"
    "|   0  NVIDIA H100 80GB HBM3  On  | 00000000:19:00.0 Off | 71234MiB / 81559MiB |\r\n",
    "curl -s -H 'Authorization: Bearer sk-live-9f8e7d6c5b4a3f2e1d0c9b8a7f6e' https://api.example.com/v1/models\r\n",
    "export AWS_ACCESS_KEY_ID=AKIAIOSFODNN7EXAMPLE\r\n",
    "ssh -p 2222 expert@203.0.113.9 'cat /home/alice/.ssh/authorized_keys'\r\n",
    "numpy.core._exceptions._ArrayMemoryError: Unable to allocate 3.2 GiB for an array with shape (20000, 20000)\r\n",
    "\x1b[?2004h\x1b[1;32m>>> \x1b[0mimport torch; torch.cuda.is_available()\r\nTrue\r\n",
]


def mixed_cast(path: Path, *, size: int, rng: random.Random) -> None:
    """The synthetic recording with about half of its output events replaced by ``MIXED`` lines."""
    tmp = path.with_suffix(".synthetic")
    synthetic_cast(tmp, size=size, rng=rng)
    with open(tmp, encoding="utf-8") as src, open(path, "w", encoding="utf-8") as dst:
        for n, line in enumerate(src):
            value = json.loads(line)
            if n and value[1] == "o" and len(value[2]) > 40 and rng.random() < 0.5:
                value[2] = "".join(rng.choice(MIXED) for _ in range(rng.randint(1, 6)))
            dst.write(json.dumps(value) + "\n")
    tmp.unlink()


def main(args) -> None:
    print("machine:", json.dumps(machine_facts()))
    print("command:", command_line())
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "baseliner.settings")
    import django

    django.setup()
    from django.test import override_settings

    from baseliner.review import casts
    from baseliner.review.anonymize import Scrubber

    scrubber = Scrubber(usernames=["zorblax", USER], names=["Quentin", "Farnsworth", "Quentin Farnsworth"],
                        emails=["quentin.f@privatemail.example.org"], homes=[f"/home/{USER}"],
                        hostnames=["gpu-node-17", "gpu-node-17.lab.internal", "bench-host"],
                        secrets=["nonce-7c1d9e2f4a6b8c0d"])
    with tempfile.TemporaryDirectory(prefix="bench-scrub-") as tmp, override_settings(RECORDINGS_DIR=tmp):
        path = Path(tmp) / "main.cast"
        (mixed_cast if args.kind == "mixed" else synthetic_cast)(path, size=int(args.cast_mb * 1e6), rng=random.Random(7))
        out_mb = sum(len(v[2]) for k, v in casts.read_cast(path) if k == "event" and v[1] == "o") / 1e6
        rec = SimpleNamespace(path=path.name, width=120, height=40)

        def run(scrub) -> tuple[float, str]:
            t0 = time.process_time()
            digest = hashlib.sha256()
            for line in casts.export_cast(rec, scrub=scrub):
                digest.update(line.encode())
            return time.process_time() - t0, digest.hexdigest()[:16]

        base = min(run(str)[0] for _ in range(args.repeat))
        timed = [run(scrubber.scrub_terminal) for _ in range(args.repeat)]
        best = min(t for t, _ in timed)
        scrub_s = max(best - base, 1e-9)
        row = {"kind": args.kind, "output_MB": round(out_mb, 3), "export_cpu_s": round(best, 3),
               "unscrubbed_cpu_s": round(base, 3), "scrub_cpu_s": round(scrub_s, 3),
               "scrub_MB_per_cpu_s": round(out_mb / scrub_s, 2), "export_MB_per_cpu_s": round(out_mb / best, 2),
               "output_sha256": timed[0][1], "load": load()}
        print(json.dumps(row))


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cast-mb", type=float, default=2.0, help="output in the eight-hour recording, MB")
    p.add_argument("--kind", choices=["synthetic", "mixed"], default="synthetic")
    p.add_argument("--repeat", type=int, default=3)
    main(p.parse_args())
