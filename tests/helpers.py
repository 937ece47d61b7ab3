"""Functions the tests run as tasks. A module of its own, outside the
interpreter's site-packages, so it also exercises sending the user's own
modules by value."""


def inc(x):
    return x + 1


def add(x, y):
    return x + y


def boom(x):
    raise ZeroDivisionError(f"boom on {x}")


def none(*args):
    return None
