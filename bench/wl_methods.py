"""wl_methods.py: method calls on objects: __init__, methods calling
methods, a property, a classmethod and a dunder ($BENCH_METHODS_N
iterations, default 100000).
Run: python wl_methods.py [--count-calls] [OUT]"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib  # noqa: E402

N = int(os.environ.get("BENCH_METHODS_N", "100000"))


class Vec:
    __slots__ = ("x", "y")

    def __init__(self, x, y):
        self.x = x
        self.y = y

    @classmethod
    def zero(cls):
        return cls(0.0, 0.0)

    def __add__(self, other):
        return Vec(self.x + other.x, self.y + other.y)

    def scale(self, k):
        return Vec(self.x * k, self.y * k)

    def dot(self, other):
        return self.x * other.x + self.y * other.y

    @property
    def norm2(self):
        return self.dot(self)


class Body:
    def __init__(self, i):
        self.pos = Vec(float(i), 1.0)
        self.vel = Vec(0.5, -0.25)

    def step(self, dt):
        self.pos = self.pos + self.vel.scale(dt)
        return self.pos.norm2


def work():
    acc = Vec.zero()
    b = Body(1)
    for i in range(N):
        b.step(0.01)
        acc = acc + b.pos
    return acc


if __name__ == "__main__":
    benchlib.main("methods", work, {"n": N})
