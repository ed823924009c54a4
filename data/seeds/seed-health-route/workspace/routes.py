ROUTES = {
    "/": "index",
    "/login": "login",
}
