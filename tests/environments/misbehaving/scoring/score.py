import json
import os
import sys
import time

SEPARATOR = "===BASELINER RESULT 7c1e==="
mode = open(os.path.join(os.environ["BASELINER_HOME"], "mode.txt")).read().split()
kind, value = mode[0], float(mode[1]) if len(mode) > 1 else 5.0


def result(score, message):
    print("\n" + SEPARATOR)
    print(json.dumps({"score": score, "message": message, "details": {"secret": "details are for staff"}}))


if kind == "ok":
    result(value, f"scored {value}")
elif kind == "invalid":
    result(None, "Wrong answer at index 3.")
elif kind == "crash":
    print("about to crash", flush=True)
    raise RuntimeError("the scorer fell over")
elif kind == "slow":  # a correct scorer that takes `value` seconds
    time.sleep(value)
    result(value, f"scored {value} slowly")
elif kind == "hang":
    time.sleep(3600)
elif kind == "flood":
    chunk = "x" * (1 << 20)
    for _ in range(50):  # 50 MB
        sys.stdout.write(chunk)
    result(value, "flooded")
elif kind == "nan":
    print("\n" + SEPARATOR)
    print('{"score": NaN, "message": "not a number"}')
elif kind == "whoami":
    import pwd
    result(value, pwd.getpwuid(os.getuid()).pw_name)
