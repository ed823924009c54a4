from greetings import fmt

print(fmt("Grace"))
