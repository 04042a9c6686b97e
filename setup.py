"""Build step for the one C extension (the bytecode hot path); everything else is in pyproject.toml."""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "kamiyo.analyzers.bytecode._scan",
            sources=["kamiyo/analyzers/bytecode/_scan.c"],
            extra_compile_args=["-O3", "-std=c99", "-Wall", "-Werror"],
        )
    ]
)
