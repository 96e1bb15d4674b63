"""What the tests and the benchmarks share: real processes of the project's services, started and stopped.

Neither a deployable nor a test: ``tests/`` and ``bench/`` both import it, and it imports
nothing from either, so a benchmark run as a script needs no ``PYTHONPATH``.
"""
