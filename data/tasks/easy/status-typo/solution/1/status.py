PORT = 8080


def main():
    print(f"Server ready on port {PORT}")


if __name__ == "__main__":
    main()
