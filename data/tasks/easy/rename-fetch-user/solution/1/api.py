from store import fetch_user


def handle(path):
    return fetch_user(int(path.rsplit("/", 1)[1]))


print(handle("/users/2"))
