USERS = {1: "ada", 2: "grace"}


def get_u(user_id):
    return USERS.get(user_id, "unknown")
