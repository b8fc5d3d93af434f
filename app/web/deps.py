"""Names handlers use to receive the process's services by dependency injection."""

from __future__ import annotations

from litestar.di import NamedDependency

from app.runtime import Runtime

RuntimeDep = NamedDependency[Runtime]
