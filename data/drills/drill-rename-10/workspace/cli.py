from pricing import fmt

print(fmt('red fox'))
