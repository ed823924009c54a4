from greetings import format_greeting

print(format_greeting("Grace"))
