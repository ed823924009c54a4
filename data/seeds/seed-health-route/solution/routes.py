ROUTES = {
    "/": "index",
    "/login": "login",
    "/health": "health_check",
}
