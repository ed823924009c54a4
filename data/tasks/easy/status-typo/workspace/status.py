PORT = 8080


def main():
    print(f"Sevrer ready on port {PORT}")


if __name__ == "__main__":
    main()
