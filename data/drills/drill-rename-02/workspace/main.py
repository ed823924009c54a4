from units import fmt

print(fmt('red fox'))
