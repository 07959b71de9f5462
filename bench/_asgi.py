"""
The ASGI application as the benchmarks serve it: baseliner's own (``baseliner.asgi``), with
terminal recording switchable off by ``BASELINER_RECORD_TERMINALS=0`` so that a benchmark can
measure what recording costs. Off, the recording services hand the bridge a writer that
drops every event (no asciicast file, no Recording row); nothing else changes. This switch
exists only here: the product always records.
"""
import os

from baseliner.asgi import application  # noqa: F401

if os.environ.get("BASELINER_RECORD_TERMINALS", "1") == "0":
    from baseliner.recording import services

    class _NoRecording:
        pk = None

    class _DropEverything:
        bytes_out = bytes_in = gaps = 0
        error = None  # the bridge's flusher reports write errors; there are none

        def output(self, data):
            pass

        input = output

        def resize(self, width, height):
            pass

        def marker(self, label):
            pass

        def flush(self):
            return True

        def close(self):
            pass

    services.recording_open = lambda **kwargs: (_NoRecording(), _DropEverything())
    services.recording_close = lambda **kwargs: None
