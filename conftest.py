"""Root conftest: the framework's own tests drive pytest end to end with ``pytester``.

The attnkata plugin itself is installed as a pytest11 entry point (``pip install -e .``),
so learners need nothing here.
"""

pytest_plugins = ["pytester"]

# Reference code, kernels and example packs are not test files.
collect_ignore = ["solutions", "kernels", "examples", "plugins", "attnkata"]
