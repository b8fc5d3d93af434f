"""Russian texts the rules speak to people with, in one place.

Templates hold the page's wording; these are the messages that travel through
the APIs too, so they live beside the rules rather than in a template.
"""

EMPTY = "Введите слово или фразу"
NOT_RUSSIAN = "Пишите по-русски: у нас заведение культурное"
UNKNOWN_SCHEME = "Такой схемы у нас нет"


def too_long(limit: int) -> str:
    """Names the limit, as the spec's example «Не больше 200 символов» does."""
    return f"Не больше {limit} символов"
