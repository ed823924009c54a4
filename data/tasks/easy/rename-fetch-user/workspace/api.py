from store import get_u


def handle(path):
    return get_u(int(path.rsplit("/", 1)[1]))


print(handle("/users/2"))
