"""Build step for the two C extensions (bytecode scan, index matching); everything else is in pyproject.toml."""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            f"kamiyo.analyzers.bytecode.{name}",
            sources=[f"kamiyo/analyzers/bytecode/{name}.c"],
            extra_compile_args=["-O3", "-std=c99", "-Wall", "-Werror"],
        )
        for name in ("_scan", "_match")
    ]
)
