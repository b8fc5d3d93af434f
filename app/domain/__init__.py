"""The product's rules: figalization, schemes, phrases, image jobs.

Pure Python: nothing here does I/O, reads settings or imports a framework,
so every rule can be tested in microseconds and reused by app and worker.
"""
