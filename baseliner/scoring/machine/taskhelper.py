#!/usr/bin/env python3
"""
baseliner's task helper for METR Task Standard families (stdlib only; runs on the machine).

    python3 taskhelper.py <family> <task> <operation> [--submission TEXT] [--score-log FILE]

It imports ``<family>.py`` from the current directory, calls ``TaskFamily``'s methods the way
the standard describes, and prints the result as JSON after a separator line (see
``protocol.py``). Operations: get_tasks, install, start, intermediate_score, score,
aggregate_scores, teardown.

Paths: family code is written for ``/home/agent`` and ``/protected``. baseliner runs this
helper as root inside a private mount namespace in which the lease's home is bind-mounted
on ``/home/agent`` and its protected folder on ``/protected`` (see ``scoring/runner.py``),
so unmodified families find their files; ``BASELINER_HOME`` and ``BASELINER_PROTECTED``
carry the real paths too.
"""
import argparse
import importlib.util
import json
import os
import sys

SEPARATOR = "===BASELINER RESULT 7c1e==="


def _float_or_none(value):
    if value is None:
        return None
    value = float(value)
    return value  # NaN and inf are passed on as they are: the app records them as errors


def _load_family(name):
    sys.path.insert(0, os.getcwd())
    spec = importlib.util.spec_from_file_location(name, os.path.join(os.getcwd(), f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module.TaskFamily


def _task(family, name):
    tasks = family.get_tasks()
    if name not in tasks:
        raise SystemExit(f"no task {name!r} in this family (tasks: {', '.join(sorted(tasks))})")
    return tasks[name]


def main(argv=None):
    p = argparse.ArgumentParser()
    p.add_argument("family")
    p.add_argument("task")
    p.add_argument("operation", choices=["get_tasks", "install", "start", "intermediate_score", "score", "aggregate_scores", "teardown"])
    p.add_argument("--submission", default="")
    p.add_argument("--score-log", default=None)
    args = p.parse_args(argv)
    family = _load_family(args.family)
    op = args.operation
    result = {}
    if op == "get_tasks":
        tasks = family.get_tasks()
        result = {"tasks": {}}
        for name, t in tasks.items():
            perms = family.get_permissions(t) if hasattr(family, "get_permissions") else []
            result["tasks"][name] = {"instructions": family.get_instructions(t), "permissions": list(perms)}
    elif op == "install":
        if hasattr(family, "install"):
            family.install()
    elif op == "start":
        if hasattr(family, "start"):
            family.start(_task(family, args.task))
    elif op == "intermediate_score":
        t = _task(family, args.task)
        if not hasattr(family, "intermediate_score"):
            result = {"score": None, "message": "This task has no intermediate scoring.", "details": {}}
        else:
            r = family.intermediate_score(t)
            if r is None:
                result = {"score": None, "message": "The task returned no score.", "details": {}}
            else:
                result = {"score": _float_or_none(r.get("score")), "message": r.get("message", {}), "details": r.get("details", {})}
    elif op == "score":
        r = family.score(_task(family, args.task), args.submission)
        result = {"score": _float_or_none(r), "message": {}, "details": {}}
    elif op == "aggregate_scores":
        log = []
        if args.score_log:
            with open(args.score_log) as f:
                log = json.load(f)
        r = family.aggregate_scores(_task(family, args.task), log) if hasattr(family, "aggregate_scores") else None
        result = {"score": _float_or_none(r), "message": {}, "details": {}}
    elif op == "teardown":
        if hasattr(family, "teardown"):
            family.teardown(_task(family, args.task))
    sys.stdout.flush()
    print("\n" + SEPARATOR)
    print(json.dumps(result, default=str))


if __name__ == "__main__":
    main()
