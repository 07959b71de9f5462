"""A small METR Task Standard family written for baseliner's tests: count the words in a file.

The agent writes the count of words in /home/agent/words.txt to /home/agent/answer.txt.
"""
import os
import random


class TaskFamily:
    standard_version = "0.3.0"

    @staticmethod
    def get_tasks() -> dict:
        return {"small": {"words": 50, "seed": 1}, "large": {"words": 5000, "seed": 2}}

    @staticmethod
    def get_instructions(t: dict) -> str:
        return (f"/home/agent/words.txt holds about {t['words']} words. Write how many words it holds "
                "to /home/agent/answer.txt (just the number).")

    @staticmethod
    def get_permissions(t: dict) -> list[str]:
        return []

    @staticmethod
    def install() -> None:
        os.makedirs("/protected", exist_ok=True)

    @staticmethod
    def start(t: dict) -> None:
        rng = random.Random(t["seed"])
        words = [rng.choice(["alpha", "beta", "gamma", "delta"]) for _ in range(t["words"] + rng.randint(0, 9))]
        with open("/home/agent/words.txt", "w") as f:
            f.write(" ".join(words) + "\n")
        with open("/protected/expected.txt", "w") as f:
            f.write(str(len(words)))

    @staticmethod
    def intermediate_score(t: dict) -> dict | None:
        expected = int(open("/protected/expected.txt").read())
        try:
            answer = int(open("/home/agent/answer.txt").read().strip())
        except (OSError, ValueError):
            return {"score": 0.0, "message": {"result": "no number in answer.txt"}, "details": {"expected": expected}}
        error = abs(answer - expected)
        score = max(0.0, 1.0 - error / expected)
        return {"score": score, "message": {"result": "correct" if error == 0 else f"off by {error}"}, "details": {"expected": expected}}

    @staticmethod
    def score(t: dict, submission: str) -> float | None:
        return 1.0 if submission.strip() == open("/protected/expected.txt").read().strip() else 0.0

    @staticmethod
    def aggregate_scores(t: dict, score_log: list[dict]) -> float | None:
        scores = [s["score"] for s in score_log if s.get("score") == s.get("score")]
        return max(scores, default=None)

    @staticmethod
    def teardown(t: dict) -> None:
        pass
