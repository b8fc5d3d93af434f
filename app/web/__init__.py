"""HTTP: HTML pages and fragments, the JSON APIs, operations endpoints."""
