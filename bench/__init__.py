"""The benchmark and the soak of Фигачечная: `python -m bench` and `python -m bench soak`.

Starts the distributed mode on this machine (PostgreSQL, the Tansu broker,
nginx as the object store, the app as `figachechnaya serve`, picture workers as
`figachechnaya worker`), loads it over loopback only, and writes what it
measured to `docs/`. It reuses the test servers of `tests/services/` and is
never imported by the application.
"""
