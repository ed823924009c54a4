from textops import total_price

print(total_price(3, 4))
