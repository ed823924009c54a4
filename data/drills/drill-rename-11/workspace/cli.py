from textops import fmt

print(fmt('red fox'))
