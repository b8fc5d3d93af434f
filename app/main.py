"""`app.main:app` for ASGI servers that import an application by name."""

from app.asgi import create_app
from app.process_tuning import tune_garbage_collector
from app.settings import Settings

app = create_app(Settings.from_env())
tune_garbage_collector()  # each server process imports this once, after building its app
