"""`app.main:app` for ASGI servers that import an application by name."""

from app.asgi import create_app
from app.settings import Settings

app = create_app(Settings.from_env())
