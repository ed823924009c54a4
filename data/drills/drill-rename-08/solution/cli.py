from pricing import title_words

print(title_words('red fox'))
