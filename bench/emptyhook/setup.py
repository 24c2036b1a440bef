"""Builds _emptyhook (`pip install bench/emptyhook`); `make bench` compiles
the same file into build/bench/ without installing it."""
from setuptools import Extension, setup

setup(
    name="traced-bench-emptyhook",
    version="0.1.0",
    ext_modules=[Extension("_emptyhook", ["emptyhook.c"])],
    py_modules=[],
)
