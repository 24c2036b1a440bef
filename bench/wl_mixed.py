"""wl_mixed.py: json round-trips, sorting with a key, string methods: many
C-function calls between few Python ones ($BENCH_MIXED_N iterations,
default 20000).  Run: python wl_mixed.py [--count-calls] [OUT]"""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib  # noqa: E402

N = int(os.environ.get("BENCH_MIXED_N", "20000"))
WORDS = ("alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu "
         "nu xi omicron pi rho sigma tau upsilon phi chi psi omega").split()


def record(i):
    return {"id": i, "name": WORDS[i % len(WORDS)],
            "tags": WORDS[i % 5:i % 5 + 4], "score": (i * 7919) % 1000 / 10.0}


def normalise(word):
    return word.strip().lower().replace("a", "4").title()


def one(i):
    rec = json.loads(json.dumps(record(i)))
    names = sorted(rec["tags"], key=len)
    text = " ".join(names).upper()
    parts = [normalise(p) for p in text.split(" ")]
    n = sum(len(p) for p in parts if p.startswith("T"))
    return n + len(str(rec["score"]).encode("utf-8"))


def work():
    total = 0
    for i in range(N):
        total += one(i)
    return total


if __name__ == "__main__":
    benchlib.main("mixed", work, {"n": N})
